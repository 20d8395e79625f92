-- Import batches (engram.store.import_contract): the same tables and meaning as the SQLite
-- schema, each row carrying its tenant for row-level security.
CREATE TABLE import_batches (
    id             text COLLATE "C" PRIMARY KEY,
    tenant         text NOT NULL,
    kind           text NOT NULL,
    source         text NOT NULL,
    collections    jsonb NOT NULL DEFAULT '[]',
    created        jsonb NOT NULL DEFAULT '[]',
    status         text NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'rolled_back')),
    counts         jsonb NOT NULL DEFAULT '{}',
    irreversible   text,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz,
    rolled_back_at timestamptz
);
CREATE INDEX import_batches_tenant ON import_batches (tenant, started_at);

CREATE TABLE import_documents (
    tenant        text NOT NULL,
    batch_id      text COLLATE "C" NOT NULL REFERENCES import_batches (id) ON DELETE CASCADE,
    collection_id bigint NOT NULL,
    key           text COLLATE "C" NOT NULL,
    action        text NOT NULL CHECK (action IN ('added', 'updated', 'deleted')),
    before        jsonb,
    after_version integer,
    after_hash    text,
    PRIMARY KEY (batch_id, collection_id, key)
);

CREATE TABLE import_vectors (
    tenant    text NOT NULL,
    batch_id  text COLLATE "C" NOT NULL REFERENCES import_batches (id) ON DELETE CASCADE,
    model_id  text NOT NULL,
    text_hash text NOT NULL,
    vector    vector NOT NULL,
    PRIMARY KEY (batch_id, model_id, text_hash)
);

CREATE TABLE import_items (
    tenant   text NOT NULL,
    batch_id text COLLATE "C" NOT NULL REFERENCES import_batches (id) ON DELETE CASCADE,
    kind     text NOT NULL CHECK (kind IN ('conversation', 'memory')),
    item_id  text COLLATE "C" NOT NULL,
    stamp    text NOT NULL,
    PRIMARY KEY (batch_id, kind, item_id)
);

ALTER TABLE import_batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_batches FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_batches
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
ALTER TABLE import_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_documents
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
ALTER TABLE import_vectors ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_vectors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_vectors
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
ALTER TABLE import_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE import_items FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON import_items
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
