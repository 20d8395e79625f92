-- Versions you can use: every version keeps its content, so that it can be read, compared
-- with another and restored (a restore writes it again as a new version). The text is kept
-- compressed (engram.store.versions.pack_text), with the title, metadata and source it had;
-- version_chunks keeps where its chunks lay and the hash of the text embedded for each (the
-- embedding cache's key: a cached vector stays while a kept version uses it, so a restore
-- calls no model). Only the current version's chunks are in the chunks table, hence in the
-- keyword and vector indexes: a past version is never searched.
-- Versions written before this migration keep what they had (NULL text, no chunk rows:
-- listed, not readable), except the current one, whose spans are copied from its chunks.
ALTER TABLE document_versions ADD COLUMN title TEXT;
ALTER TABLE document_versions ADD COLUMN metadata TEXT;
ALTER TABLE document_versions ADD COLUMN source TEXT;
ALTER TABLE document_versions ADD COLUMN body BLOB;
ALTER TABLE document_versions ADD COLUMN restored_from INTEGER;

CREATE TABLE version_chunks (
    document_id  INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    ordinal      INTEGER NOT NULL,
    start_char   INTEGER NOT NULL,
    end_char     INTEGER NOT NULL,
    page         INTEGER,
    heading_path TEXT NOT NULL DEFAULT '[]',
    text_hash    TEXT NOT NULL,
    PRIMARY KEY (document_id, version, ordinal),
    FOREIGN KEY (document_id, version) REFERENCES document_versions (document_id, version)
        ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX version_chunks_text_hash ON version_chunks (text_hash);

UPDATE document_versions SET
    title = (SELECT d.title FROM documents d WHERE d.id = document_versions.document_id),
    metadata = (SELECT d.metadata FROM documents d WHERE d.id = document_versions.document_id),
    source = (SELECT d.source FROM documents d WHERE d.id = document_versions.document_id)
WHERE version = (SELECT d.version FROM documents d WHERE d.id = document_versions.document_id);

INSERT OR IGNORE INTO version_chunks
SELECT c.document_id, c.version, c.ordinal, c.start_char, c.end_char, c.page, c.heading_path,
       c.text_hash
FROM chunks c JOIN document_versions v ON v.document_id = c.document_id AND v.version = c.version;
