-- The tables and indexes, written once: IF NOT EXISTS throughout, so that this step also adopts a
-- database created before versioning (by the former per-engine stores) and keeps its data.

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
