-- Import batches (engram.store.import_contract): what each `engram import` added, updated and
-- deleted, with the state it replaced, so that `engram import --rollback BATCH` can put it
-- back. collections: the names it wrote to (JSON list); created: ids of the collections it
-- created (JSON list); counts: what it did (JSON object); irreversible: why it cannot be
-- rolled back (NULL: it can).
CREATE TABLE import_batches (
    id             TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    kind           TEXT NOT NULL,
    source         TEXT NOT NULL,
    collections    TEXT NOT NULL DEFAULT '[]',
    created        TEXT NOT NULL DEFAULT '[]',
    status         TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'rolled_back')),
    counts         TEXT NOT NULL DEFAULT '{}',
    irreversible   TEXT,
    started_at     TEXT NOT NULL,
    finished_at    TEXT,
    rolled_back_at TEXT
);
CREATE INDEX import_batches_tenant ON import_batches (tenant, started_at);

-- Each document a batch touched, once: its first action, the state it replaced (JSON: title,
-- metadata, source, hashes and chunks as indexed; NULL for an added one) and the version and
-- content hash the batch left (NULL: deleted), which a rollback compares with the current
-- ones. No foreign key to collections: a deleted collection's entries stay, as conflicts.
CREATE TABLE import_documents (
    batch_id      TEXT NOT NULL REFERENCES import_batches(id) ON DELETE CASCADE,
    collection_id INTEGER NOT NULL,
    key           TEXT NOT NULL,
    action        TEXT NOT NULL CHECK (action IN ('added', 'updated', 'deleted')),
    before        TEXT,
    after_version INTEGER,
    after_hash    TEXT,
    PRIMARY KEY (batch_id, collection_id, key)
);

-- The vectors of the chunks kept in `before`: the embedding cache drops a vector once no
-- chunk uses it, so a rollback finds them here and embeds nothing.
CREATE TABLE import_vectors (
    batch_id  TEXT NOT NULL REFERENCES import_batches(id) ON DELETE CASCADE,
    model_id  TEXT NOT NULL,
    text_hash TEXT NOT NULL,
    vector    BLOB NOT NULL,
    PRIMARY KEY (batch_id, model_id, text_hash)
) WITHOUT ROWID;

-- Conversations and memories a batch wrote, with the updated_at it left them with.
CREATE TABLE import_items (
    batch_id TEXT NOT NULL REFERENCES import_batches(id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('conversation', 'memory')),
    item_id  TEXT NOT NULL,
    stamp    TEXT NOT NULL,
    PRIMARY KEY (batch_id, kind, item_id)
);
