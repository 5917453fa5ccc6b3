-- Triggers and JSON functions: the audit refuses change; case_recipients follows each case's data,
-- whoever writes it (filled once for cases from before it existed); a case from before markings
-- followed cases takes its request's marking (once: a case written since has the key, null or not).

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
