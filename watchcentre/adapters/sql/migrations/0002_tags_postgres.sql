-- The former PostgreSQL store filtered on jsonb arrays (GIN indexes); the one store filters on
-- message_tags, as SQLite always did: filled from those arrays once, and the GIN indexes go.

INSERT INTO message_tags (tag_kind, tag, message_fk)
    SELECT 'crime_type', t, id FROM messages, jsonb_array_elements_text(crime_types) AS t
    UNION SELECT 'country', t, id FROM messages, jsonb_array_elements_text(countries) AS t
    UNION SELECT 'recipient', t, id FROM messages, jsonb_array_elements_text(recipients) AS t
    ON CONFLICT DO NOTHING;
DROP INDEX IF EXISTS messages_crime_types;
DROP INDEX IF EXISTS messages_countries;
DROP INDEX IF EXISTS messages_recipients;
