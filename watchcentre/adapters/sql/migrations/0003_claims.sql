-- A manual routing's revision is claimed before its copies are published (one instance publishes).

CREATE TABLE IF NOT EXISTS manual_claims (
    sender     {text} NOT NULL,
    message_id {text} NOT NULL,
    revision   {int} NOT NULL,
    claim      {text} NOT NULL,
    at         {ts} NOT NULL,
    PRIMARY KEY (sender, message_id, revision)
);
