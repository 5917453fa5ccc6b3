"""The schema, written once, and its versioned migrations.

`steps(dialect)` gives the ordered (version, description, sql) migrations; the dialect records each
applied version in `schema_version`. A step's SQL is data, in migrations/: `NNNN_name.sql` for both
engines, then `NNNN_name_<dialect>.sql` for what cannot be said in common SQL (triggers, JSON
functions, full-text search), whichever exist. Type names and the other words that differ are
`_WORDS` ({ts}, {json}, ...; `{{` for a brace). A file opens with a note in `--` lines, not part of
the step's SQL. A released step is frozen (tests/unit/test_schema_steps.py): change the schema with
a new step.
"""

from __future__ import annotations

import re
from importlib.resources import files

from watchcentre.adapters.sql.dialects import Dialect

# The words of the DDL that differ, {word: (SQLite's, PostgreSQL's)}: type names (a column kind of
# dialects.py is a word here), keys, clauses.
_BOTH = {
    "text": ("TEXT", "text"),
    "int": ("INTEGER", "integer"),
    "bigint": ("INTEGER", "bigint"),
    "ts": ("TEXT", "timestamptz"),
    "json": ("TEXT", "jsonb"),
    "blob": ("BLOB", "bytea"),
    "rowid": ("INTEGER PRIMARY KEY", "bigserial PRIMARY KEY"),
    "serial": ("INTEGER PRIMARY KEY AUTOINCREMENT", "bigserial PRIMARY KEY"),
    "without_rowid": (" WITHOUT ROWID", ""),
    "if_not": ("", "IF NOT EXISTS"),
}
_WORDS = {d: {w: both[i] for w, both in _BOTH.items()} for i, d in enumerate(("sqlite", "postgres"))}
# (version, name, description): the step's SQL is in migrations/NNNN_name*.sql.
_STEPS = (
    (1, "baseline", "baseline (adopts a database of the former per-engine stores)"),
    (2, "tags", "message_tags on PostgreSQL too"),
    (3, "claims", "manual routing claims"),
    (4, "labels", "labels: operators' corrections"),
    (5, "purged", "purged_at (retention)"),
    (6, "search", "full-text search over subject and body"),
    (7, "identifiers", "identifiers per message, watch lists and their hits"),
    (8, "watch_acks", "watch hits acknowledged (the console's alerts)"),
)
_MIGRATIONS = files(__package__) / "migrations"
_NOTE = re.compile(r"\A(--.*\n)*")


def steps(dialect: Dialect) -> list[tuple[int, str, str]]:
    return [(v, description, _sql(f"{v:04}_{name}", dialect.name)) for v, name, description in _STEPS]


def _sql(stem: str, dialect: str) -> str:
    paths = [_MIGRATIONS / f"{stem}{tail}.sql" for tail in ("", *(f"_{d}" for d in _WORDS))]
    # No file at all (a misspelt name, one left out of the package): applied empty, it would be
    # recorded as done and never run.
    if not any(path.is_file() for path in paths):
        raise FileNotFoundError(f"migration step {stem}: no {stem}*.sql in {_MIGRATIONS}")
    sql = ""
    for path in (paths[0], _MIGRATIONS / f"{stem}_{dialect}.sql"):
        if path.is_file():
            sql += _NOTE.sub("", path.read_text(encoding="utf-8")).format_map(_WORDS[dialect])
    return sql
