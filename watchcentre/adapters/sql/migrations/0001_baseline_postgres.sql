-- As 0001_baseline_sqlite.sql, in plpgsql; and the audit's hash chain columns for a database
-- of the former PostgreSQL store.

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
UPDATE cases SET data = jsonb_set(data, '{{handling}}', coalesce((
    SELECT m.envelope -> 'handling' FROM messages m
    WHERE m.sender = cases.sender AND m.message_id = cases.message_id AND m.status <> 'rejected'), 'null'))
WHERE NOT data ? 'handling';
