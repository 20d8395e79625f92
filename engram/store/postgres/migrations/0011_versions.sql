-- Versions you can use: every version keeps its content, so that it can be read, compared
-- with another and restored (a restore writes it again as a new version). The text is kept
-- compressed (engram.store.versions.pack_text), with the title, metadata and source it had;
-- version_chunks keeps where its chunks lay and the hash of the text embedded for each (the
-- embedding cache's key: a cached vector stays while a kept version uses it, so a restore
-- calls no model). Only the current version's chunks are in the chunks table, hence in the
-- keyword and vector indexes: a past version is never searched.
-- Versions written before this migration keep what they had (NULL text, no chunk rows:
-- listed, not readable), except the current one, whose spans are copied from its chunks.
ALTER TABLE document_versions ADD COLUMN title text;
ALTER TABLE document_versions ADD COLUMN metadata jsonb;
ALTER TABLE document_versions ADD COLUMN source text;
ALTER TABLE document_versions ADD COLUMN body bytea;
ALTER TABLE document_versions ADD COLUMN restored_from integer;

CREATE TABLE version_chunks (
    tenant       text NOT NULL,
    document_id  bigint NOT NULL,
    version      integer NOT NULL,
    ordinal      integer NOT NULL,
    start_char   integer NOT NULL,
    end_char     integer NOT NULL,
    page         integer,
    heading_path jsonb NOT NULL DEFAULT '[]',
    text_hash    text NOT NULL,
    PRIMARY KEY (document_id, version, ordinal),
    FOREIGN KEY (document_id, version) REFERENCES document_versions (document_id, version)
        ON DELETE CASCADE
);
CREATE INDEX version_chunks_text_hash ON version_chunks (text_hash);

-- Row-level security applies to the owner too (FORCE): see every tenant's rows to copy them.
SELECT set_config('engram.tenant', '*', true);
UPDATE document_versions v SET title = d.title, metadata = d.metadata, source = d.source
FROM documents d WHERE d.id = v.document_id AND d.version = v.version;

INSERT INTO version_chunks (tenant, document_id, version, ordinal, start_char, end_char, page,
                            heading_path, text_hash)
SELECT c.tenant, c.document_id, c.version, c.ordinal, c.start_char, c.end_char, c.page,
       c.heading_path, c.text_hash
FROM chunks c JOIN document_versions v ON v.document_id = c.document_id AND v.version = c.version
ON CONFLICT DO NOTHING;

ALTER TABLE version_chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE version_chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON version_chunks
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
