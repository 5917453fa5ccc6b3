-- Identifiers found at intake (core/identifiers.py), one row per (kind, value, message); watch lists
-- and their hits (one per watch and message: the primary key makes the alert once).

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
