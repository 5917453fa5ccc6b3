-- A watch hit is the console's alert until an operator acknowledges it (like the deadline alerts).

ALTER TABLE watch_hits ADD COLUMN {if_not} acknowledged_at {ts};
ALTER TABLE watch_hits ADD COLUMN {if_not} acknowledged_by {text};
CREATE INDEX IF NOT EXISTS watch_hits_pending ON watch_hits (at) WHERE acknowledged_at IS NULL;
