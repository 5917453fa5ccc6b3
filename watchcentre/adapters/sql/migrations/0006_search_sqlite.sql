-- Full-text search (adapters/sql/search.py): an index kept in step with `messages` by triggers, so
-- every writer (intake, a purge that blanks or deletes rows) keeps it right. `message_text` is the
-- searchable text of accepted messages, without the private-use characters the engines mark hits with.

CREATE VIEW IF NOT EXISTS message_text AS
    SELECT id,
        replace(replace(subject, char(57344), ''), char(57345), '') AS subject,
        replace(replace(json_extract(envelope, '$.body'), char(57344), ''), char(57345), '') AS body
    FROM messages WHERE status <> 'rejected';
CREATE VIRTUAL TABLE IF NOT EXISTS message_search USING fts5(
    subject, body, content='message_text', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS message_search_insert AFTER INSERT ON messages WHEN NEW.status <> 'rejected' BEGIN
    INSERT INTO message_search (rowid, subject, body) SELECT id, subject, body FROM message_text WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS message_search_forget BEFORE UPDATE OF subject, envelope ON messages
WHEN OLD.status <> 'rejected' BEGIN
    INSERT INTO message_search (message_search, rowid, subject, body)
        SELECT 'delete', id, subject, body FROM message_text WHERE id = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS message_search_learn AFTER UPDATE OF subject, envelope ON messages
WHEN NEW.status <> 'rejected' BEGIN
    INSERT INTO message_search (rowid, subject, body) SELECT id, subject, body FROM message_text WHERE id = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS message_search_delete BEFORE DELETE ON messages WHEN OLD.status <> 'rejected' BEGIN
    INSERT INTO message_search (message_search, rowid, subject, body)
        SELECT 'delete', id, subject, body FROM message_text WHERE id = OLD.id;
END;
INSERT INTO message_search (message_search) VALUES ('rebuild');
