-- Full-text search, as 0006_search_sqlite.sql. unaccent is database-wide (one extension per
-- database): installed once in `public`, wherever this schema is; the text search configurations and
-- the functions are this schema's own (a schema per test, or per instance group, each has its own).
-- `wc_search_doc` is IMMUTABLE (constant configurations), the one definition of what is indexed, used
-- by the trigger and the backfill.

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
