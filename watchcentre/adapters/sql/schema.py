"""The schema, written once, and its versioned migrations.

`steps(dialect)` gives the ordered (version, description, sql) migrations; the dialect records each
applied version in `schema_version`. Step 1 is written with IF NOT EXISTS throughout, so that it
also adopts a database created before versioning (by the former per-engine stores) and keeps its
data. Type names and the other words that differ are `_WORDS` ({ts}, {json}, ...); what cannot be said in common SQL
(triggers, JSON functions, identity columns) is per dialect, and only that.
"""

from __future__ import annotations

from watchcentre.adapters.sql.dialects import Dialect

# The words of the DDL that differ: type names (a column kind of dialects.py is a key here), keys, clauses.
_WORDS = {
    "sqlite": {
        "text": "TEXT",
        "int": "INTEGER",
        "bigint": "INTEGER",
        "ts": "TEXT",
        "json": "TEXT",
        "blob": "BLOB",
        "rowid": "INTEGER PRIMARY KEY",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "without_rowid": " WITHOUT ROWID",
        "if_not": "",
    },
    "postgres": {
        "text": "text",
        "int": "integer",
        "bigint": "bigint",
        "ts": "timestamptz",
        "json": "jsonb",
        "blob": "bytea",
        "rowid": "bigserial PRIMARY KEY",
        "serial": "bigserial PRIMARY KEY",
        "without_rowid": "",
        "if_not": "IF NOT EXISTS",
    },
}
_TABLES = """
CREATE TABLE IF NOT EXISTS messages (
    id          {rowid},
    sender      {text},
    message_id  {text},
    kind        {text},
    priority    {text},
    reference   {text},
    subject     {text},
    status      {text} NOT NULL CHECK (status IN ('routed', 'triage', 'rejected')),
    received_at {ts} NOT NULL,
    crime_types {json} NOT NULL DEFAULT '[]',
    countries   {json} NOT NULL DEFAULT '[]',
    recipients  {json} NOT NULL DEFAULT '[]',
    envelope    {json},
    routing     {json},
    error       {text},
    raw         {blob},
    digest      {text}
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_accepted_key ON messages (sender, message_id)
    WHERE status <> 'rejected';
CREATE UNIQUE INDEX IF NOT EXISTS messages_rejected_digest ON messages (digest) WHERE status = 'rejected';
CREATE INDEX IF NOT EXISTS messages_received ON messages (received_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS messages_status ON messages (status, id DESC);
CREATE INDEX IF NOT EXISTS messages_sender ON messages (sender, id DESC);
CREATE INDEX IF NOT EXISTS messages_reference ON messages (reference, id DESC);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id, id DESC);

CREATE TABLE IF NOT EXISTS message_tags (
    tag_kind   {text} NOT NULL CHECK (tag_kind IN ('crime_type', 'country', 'recipient')),
    tag        {text} NOT NULL,
    message_fk {bigint} NOT NULL REFERENCES messages (id),
    PRIMARY KEY (tag_kind, tag, message_fk)
){without_rowid};

CREATE TABLE IF NOT EXISTS audit (
    seq        {serial},
    at         {ts} NOT NULL,
    type       {text} NOT NULL,
    actor      {text} NOT NULL,
    sender     {text},
    message_id {text},
    reference  {text},
    details    {json} NOT NULL DEFAULT '{{}}',
    prev_hash  {text},
    hash       {text}
);
CREATE INDEX IF NOT EXISTS audit_message_id ON audit (message_id, seq);
CREATE INDEX IF NOT EXISTS audit_sender ON audit (sender, seq);
CREATE INDEX IF NOT EXISTS audit_type ON audit (type, seq);
CREATE INDEX IF NOT EXISTS audit_reference ON audit (reference, seq);

CREATE TABLE IF NOT EXISTS tokens (
    id         {text} PRIMARY KEY,
    name       {text} NOT NULL,
    role       {text} NOT NULL,
    subject    {text},
    created_at {ts} NOT NULL,
    expires_at {ts} NOT NULL,
    revoked_at {ts},
    hash       {text} NOT NULL UNIQUE
);

CREATE TABLE IF NOT EXISTS cases (
    reference             {text} PRIMARY KEY,
    sender                {text} NOT NULL,
    message_id            {text} NOT NULL,
    state                 {text} NOT NULL,
    version               {int} NOT NULL DEFAULT 0,
    opened_at             {ts} NOT NULL,
    ack_due_at            {ts},
    warn_at               {ts},
    due_at                {ts},
    ack_overdue_raised_at {ts},
    warning_raised_at     {ts},
    overdue_raised_at     {ts},
    data                  {json} NOT NULL,
    UNIQUE (sender, message_id)
);
CREATE INDEX IF NOT EXISTS cases_state ON cases (state, due_at);
DROP INDEX IF EXISTS cases_opened;
CREATE INDEX IF NOT EXISTS cases_newest ON cases (opened_at, reference);
CREATE INDEX IF NOT EXISTS cases_sender_newest ON cases (sender, opened_at, reference);
CREATE TABLE IF NOT EXISTS case_recipients (
    recipient {text} NOT NULL,
    reference {text} NOT NULL,
    PRIMARY KEY (recipient, reference)
){without_rowid};
CREATE INDEX IF NOT EXISTS case_recipients_reference ON case_recipients (reference);

CREATE TABLE IF NOT EXISTS manual_routes (
    sender     {text} NOT NULL,
    message_id {text} NOT NULL,
    revision   {int} NOT NULL,
    at         {ts} NOT NULL,
    actor      {text} NOT NULL,
    reason     {text} NOT NULL,
    recipients {json} NOT NULL,
    PRIMARY KEY (sender, message_id, revision)
);

CREATE TABLE IF NOT EXISTS notes (
    id          {serial},
    at          {ts} NOT NULL,
    author      {text} NOT NULL,
    text        {text} NOT NULL,
    message_ids {json} NOT NULL DEFAULT '[]',
    refs        {json} NOT NULL DEFAULT '[]'
);
"""

# Triggers and JSON functions: the audit refuses change; case_recipients follows each case's data,
# whoever writes it (filled once for cases from before it existed); a case from before markings
# followed cases takes its request's marking (once: a case written since has the key, null or not).
_SQLITE = """
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS cases_recipients_insert AFTER INSERT ON cases BEGIN
    INSERT OR IGNORE INTO case_recipients (recipient, reference)
        SELECT value, NEW.reference FROM json_each(NEW.data, '$.recipients');
END;
CREATE TRIGGER IF NOT EXISTS cases_recipients_update AFTER UPDATE OF data ON cases BEGIN
    DELETE FROM case_recipients WHERE reference = OLD.reference;
    INSERT OR IGNORE INTO case_recipients (recipient, reference)
        SELECT value, NEW.reference FROM json_each(NEW.data, '$.recipients');
END;
CREATE TRIGGER IF NOT EXISTS cases_recipients_delete AFTER DELETE ON cases BEGIN
    DELETE FROM case_recipients WHERE reference = OLD.reference;
END;
INSERT OR IGNORE INTO case_recipients (recipient, reference)
    SELECT j.value, c.reference FROM cases c, json_each(c.data, '$.recipients') j
    WHERE NOT EXISTS (SELECT 1 FROM case_recipients);
UPDATE cases SET data = json_set(data, '$.handling', (
    SELECT json_extract(m.envelope, '$.handling') FROM messages m
    WHERE m.sender = cases.sender AND m.message_id = cases.message_id AND m.status != 'rejected'))
WHERE json_type(data, '$.handling') IS NULL;
"""

_POSTGRES = """
ALTER TABLE audit ADD COLUMN IF NOT EXISTS prev_hash text;
ALTER TABLE audit ADD COLUMN IF NOT EXISTS hash text;
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only: % refused', TG_OP;
END
$$;
CREATE OR REPLACE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE FUNCTION cases_recipients_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM case_recipients WHERE reference = OLD.reference;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO case_recipients (recipient, reference)
            SELECT r, NEW.reference FROM jsonb_array_elements_text(NEW.data -> 'recipients') AS r
            ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER cases_recipients AFTER INSERT OR UPDATE OF data OR DELETE ON cases
    FOR EACH ROW EXECUTE FUNCTION cases_recipients_sync();
INSERT INTO case_recipients (recipient, reference)
    SELECT r, c.reference FROM cases c, jsonb_array_elements_text(c.data -> 'recipients') AS r
    WHERE NOT EXISTS (SELECT 1 FROM case_recipients)
    ON CONFLICT DO NOTHING;
UPDATE cases SET data = jsonb_set(data, '{handling}', coalesce((
    SELECT m.envelope -> 'handling' FROM messages m
    WHERE m.sender = cases.sender AND m.message_id = cases.message_id AND m.status <> 'rejected'), 'null'))
WHERE NOT data ? 'handling';
"""

# The former PostgreSQL store filtered on jsonb arrays (GIN indexes); the one store filters on
# message_tags, as SQLite always did: filled from those arrays once, and the GIN indexes go.
_POSTGRES_TAGS = """
INSERT INTO message_tags (tag_kind, tag, message_fk)
    SELECT 'crime_type', t, id FROM messages, jsonb_array_elements_text(crime_types) AS t
    UNION SELECT 'country', t, id FROM messages, jsonb_array_elements_text(countries) AS t
    UNION SELECT 'recipient', t, id FROM messages, jsonb_array_elements_text(recipients) AS t
    ON CONFLICT DO NOTHING;
DROP INDEX IF EXISTS messages_crime_types;
DROP INDEX IF EXISTS messages_countries;
DROP INDEX IF EXISTS messages_recipients;
"""


# Operators' corrections of a message's crime types and countries (adapters/sql/history.py).
_LABELS = """
CREATE TABLE IF NOT EXISTS labels (
    id          {serial},
    sender      {text} NOT NULL,
    message_id  {text} NOT NULL,
    at          {ts} NOT NULL,
    actor       {text} NOT NULL,
    reason      {text} NOT NULL,
    crime_types {json},
    countries   {json},
    predicted   {json} NOT NULL,
    blamed      {json} NOT NULL
);
CREATE INDEX IF NOT EXISTS labels_message ON labels (sender, message_id, id);
"""

# Full-text search (adapters/sql/search.py): an index kept in step with `messages` by triggers, so
# every writer (intake, a purge that blanks or deletes rows) keeps it right. `message_text` is the
# searchable text of accepted messages, without the private-use characters the engines mark hits with.
_SQLITE_SEARCH = """
CREATE VIEW IF NOT EXISTS message_text AS
    SELECT id,
        replace(replace(subject, char(57344), ''), char(57345), '') AS subject,
        replace(replace(json_extract(envelope, '$.body'), char(57344), ''), char(57345), '') AS body
    FROM messages WHERE status <> 'rejected';
CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5(
    subject, body, content='message_text', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS message_search_insert AFTER INSERT ON messages WHEN NEW.status <> 'rejected' BEGIN
    INSERT INTO message_search (rowid, subject, body) SELECT id, subject, body FROM message_text WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS message_search_forget BEFORE UPDATE OF subject, envelope ON messages
WHEN OLD.status <> 'rejected' BEGIN
    INSERT INTO message_search (message_search, rowid, subject, body)
        SELECT 'delete', id, subject, body FROM message_text WHERE id = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS message_search_learn AFTER UPDATE OF subject, envelope ON messages
WHEN NEW.status <> 'rejected' BEGIN
    INSERT INTO message_search (rowid, subject, body) SELECT id, subject, body FROM message_text WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS message_search_delete BEFORE DELETE ON messages WHEN OLD.status <> 'rejected' BEGIN
    INSERT INTO message_search (message_search, rowid, subject, body)
        SELECT 'delete', id, subject, body FROM message_text WHERE id = OLD.id;
END;
INSERT INTO message_search (message_search) VALUES ('rebuild');
"""

# unaccent is database-wide (one extension per database): installed once in `public`, wherever this
# schema is; the text search configurations and the functions are this schema's own (a schema per
# test, or per instance group, each has its own). `wc_search_doc` is IMMUTABLE (constant
# configurations), the one definition of what is indexed, used by the trigger and the backfill.
_POSTGRES_SEARCH = r"""
CREATE EXTENSION IF NOT EXISTS unaccent WITH SCHEMA public;
DO $do$
DECLARE
    ext text := (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'unaccent');
    here text := current_schema();
BEGIN
    -- no IF NOT EXISTS for configurations: a database that ran this step before keeps its own
    IF NOT EXISTS (SELECT 1 FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
                   WHERE c.cfgname = 'wc_french' AND n.nspname = here) THEN
        EXECUTE format('CREATE TEXT SEARCH CONFIGURATION %I.wc_french (COPY = pg_catalog.french)', here);
        EXECUTE format('ALTER TEXT SEARCH CONFIGURATION %I.wc_french ALTER MAPPING FOR hword, hword_part, word'
            ' WITH %I.unaccent, french_stem', here, ext);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace
                   WHERE c.cfgname = 'wc_english' AND n.nspname = here) THEN
        EXECUTE format('CREATE TEXT SEARCH CONFIGURATION %I.wc_english (COPY = pg_catalog.english)', here);
        EXECUTE format('ALTER TEXT SEARCH CONFIGURATION %I.wc_english ALTER MAPPING FOR hword, hword_part, word'
            ' WITH %I.unaccent, english_stem', here, ext);
    END IF;
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION %1$I.wc_search_doc(subject text, body text) RETURNS tsvector
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $body$
            SELECT setweight(to_tsvector('%1$I.wc_french', coalesce(subject, '')), 'A')
                || setweight(to_tsvector('%1$I.wc_english', coalesce(subject, '')), 'A')
                || to_tsvector('%1$I.wc_french', coalesce(body, ''))
                || to_tsvector('%1$I.wc_english', coalesce(body, ''))
        $body$ $f$, here);
END
$do$;
CREATE OR REPLACE VIEW message_text AS
    SELECT id,
        replace(replace(subject, U&'\E000', ''), U&'\E001', '') AS subject,
        replace(replace(envelope ->> 'body', U&'\E000', ''), U&'\E001', '') AS body
    FROM messages WHERE status <> 'rejected';
CREATE TABLE IF NOT EXISTS message_search (message_fk bigint PRIMARY KEY, doc tsvector NOT NULL);
CREATE INDEX IF NOT EXISTS message_search_doc ON message_search USING GIN (doc);
CREATE OR REPLACE FUNCTION message_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM message_search WHERE message_fk = OLD.id;
    ELSIF NEW.status = 'rejected' THEN
        DELETE FROM message_search WHERE message_fk = NEW.id;
    ELSE
        INSERT INTO message_search (message_fk, doc) VALUES (NEW.id, wc_search_doc(NEW.subject, NEW.envelope ->> 'body'))
            ON CONFLICT (message_fk) DO UPDATE SET doc = EXCLUDED.doc;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER message_search AFTER INSERT OR UPDATE OF subject, envelope OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION message_search_sync();
INSERT INTO message_search (message_fk, doc)
    SELECT id, wc_search_doc(subject, envelope ->> 'body') FROM messages WHERE status <> 'rejected'
    ON CONFLICT DO NOTHING;
"""


# Identifiers found at intake (core/identifiers.py), one row per (kind, value, message); watch lists
# and their hits (one per watch and message: the primary key makes the alert once).
_IDENTIFIERS = """
CREATE TABLE IF NOT EXISTS message_identifiers (
    kind       {text} NOT NULL,
    value      {text} NOT NULL,
    message_fk {bigint} NOT NULL,
    PRIMARY KEY (kind, value, message_fk)
){without_rowid};
CREATE INDEX IF NOT EXISTS message_identifiers_message ON message_identifiers (message_fk);
CREATE TABLE IF NOT EXISTS watches (
    id         {serial},
    kind       {text} NOT NULL CHECK (kind IN ('identifier', 'phrase')),
    id_kind    {text},
    value      {text} NOT NULL,
    label      {text} NOT NULL,
    reason     {text} NOT NULL,
    created_by {text} NOT NULL,
    created_at {ts} NOT NULL,
    expires_at {ts} NOT NULL,
    ended_at   {ts},
    ended_by   {text}
);
CREATE INDEX IF NOT EXISTS watches_live ON watches (expires_at) WHERE ended_at IS NULL;
CREATE TABLE IF NOT EXISTS watch_hits (
    watch_id   {bigint} NOT NULL,
    message_fk {bigint} NOT NULL,
    at         {ts} NOT NULL,
    PRIMARY KEY (watch_id, message_fk)
){without_rowid};
CREATE INDEX IF NOT EXISTS watch_hits_message ON watch_hits (message_fk);
"""

# A manual routing's revision is claimed before its copies are published (one instance publishes).
_CLAIMS = """
CREATE TABLE IF NOT EXISTS manual_claims (
    sender     {text} NOT NULL,
    message_id {text} NOT NULL,
    revision   {int} NOT NULL,
    claim      {text} NOT NULL,
    at         {ts} NOT NULL,
    PRIMARY KEY (sender, message_id, revision)
);
"""

# Retention (adapters/sql/retention.py): when a row's text was erased; what stays is still read.
_PURGED = """
ALTER TABLE messages ADD COLUMN {if_not} purged_at {ts};
ALTER TABLE cases ADD COLUMN {if_not} purged_at {ts};
ALTER TABLE notes ADD COLUMN {if_not} purged_at {ts};
CREATE INDEX IF NOT EXISTS messages_purged ON messages (purged_at) WHERE purged_at IS NOT NULL;
"""


# A watch hit is the console's alert until an operator acknowledges it (like the deadline alerts).
_WATCH_ACKS = """
ALTER TABLE watch_hits ADD COLUMN {if_not} acknowledged_at {ts};
ALTER TABLE watch_hits ADD COLUMN {if_not} acknowledged_by {text};
CREATE INDEX IF NOT EXISTS watch_hits_pending ON watch_hits (at) WHERE acknowledged_at IS NULL;
"""


def steps(dialect: Dialect) -> list[tuple[int, str, str]]:
    sqlite, words = dialect.name == "sqlite", _WORDS[dialect.name]
    return [
        (
            1,
            "baseline (adopts a database of the former per-engine stores)",
            _TABLES.format_map(words) + (_SQLITE if sqlite else _POSTGRES),
        ),
        (2, "message_tags on PostgreSQL too", "" if sqlite else _POSTGRES_TAGS),
        (3, "manual routing claims", _CLAIMS.format_map(words)),
        (4, "labels: operators' corrections", _LABELS.format_map(words)),
        (5, "purged_at (retention)", _PURGED.format_map(words)),
        (6, "full-text search over subject and body", _SQLITE_SEARCH if sqlite else _POSTGRES_SEARCH),
        (7, "identifiers per message, watch lists and their hits", _IDENTIFIERS.format_map(words)),
        (8, "watch hits acknowledged (the console's alerts)", _WATCH_ACKS.format_map(words)),
    ]
