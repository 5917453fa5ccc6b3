"""One SQL store for SQLite and PostgreSQL: raw SQL written once behind a small named dialect seam
(dialects.py), with a versioned schema (schema.py). Each port's queries are in their own module;
`SqlStore` is all of them on one database."""

from watchcentre.adapters.sql.history import SqlHistory
from watchcentre.adapters.sql.retention import SqlRetention
from watchcentre.adapters.sql.search import SqlSearch
from watchcentre.adapters.sql.store import SqlRecords
from watchcentre.adapters.sql.subject_access import SqlSubjectAccess


class SqlStore(SqlRecords, SqlSearch, SqlHistory, SqlRetention, SqlSubjectAccess):
    """core/ports.Store with History, Labels, RetentionStore and SubjectAccessStore."""


__all__ = ["SqlStore"]
