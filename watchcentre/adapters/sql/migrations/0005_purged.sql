-- Retention (adapters/sql/retention.py): when a row's text was erased; what stays is still read.

ALTER TABLE messages ADD COLUMN {if_not} purged_at {ts};
ALTER TABLE cases ADD COLUMN {if_not} purged_at {ts};
ALTER TABLE notes ADD COLUMN {if_not} purged_at {ts};
CREATE INDEX IF NOT EXISTS messages_purged ON messages (purged_at) WHERE purged_at IS NOT NULL;
