-- Operators' corrections of a message's crime types and countries (adapters/sql/history.py).

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
