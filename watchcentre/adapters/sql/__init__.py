"""One SQL store for SQLite and PostgreSQL: raw SQL written once (store.py) behind a small named
dialect seam (dialects.py), with a versioned schema (schema.py)."""

from watchcentre.adapters.sql.store import SqlStore

__all__ = ["SqlStore"]
