-- Collections, documents and their versions, chunks, the embedding cache and the vector change
-- log. Keyword indexes are FTS5 tables created per collection (fts_<collection id>) so that
-- BM25 statistics (N, average length, document frequencies) are those of the collection.
CREATE TABLE collections (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    model_id    TEXT NOT NULL,
    dimension   INTEGER NOT NULL,
    language    TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);

CREATE TABLE documents (
    id            INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    key           TEXT NOT NULL,
    title         TEXT NOT NULL DEFAULT '',
    version       INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    source        TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (collection_id, key)
);

CREATE TABLE document_versions (
    document_id   INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,
    chunk_count   INTEGER NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (document_id, version)
);

CREATE TABLE chunks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    document_id   INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    ordinal       INTEGER NOT NULL,
    text          TEXT NOT NULL,
    start_char    INTEGER NOT NULL,
    end_char      INTEGER NOT NULL,
    page          INTEGER,
    heading_path  TEXT NOT NULL DEFAULT '[]',
    text_hash     TEXT NOT NULL
);
CREATE INDEX chunks_document ON chunks (document_id);
CREATE INDEX chunks_collection ON chunks (collection_id);
CREATE INDEX chunks_text_hash ON chunks (text_hash);

-- Embedding cache: one vector per (model, exact text embedded). Rows no chunk refers to are
-- removed when documents are deleted, so a deleted text leaves no vector behind.
CREATE TABLE embeddings (
    model_id   TEXT NOT NULL,
    text_hash  TEXT NOT NULL,
    vector     BLOB NOT NULL,
    PRIMARY KEY (model_id, text_hash)
) WITHOUT ROWID;

-- Every chunk added to or removed from a collection, in commit order. The HNSW index files are
-- derived from SQLite: an index that is behind replays this log; pruned_seq marks how far the
-- log was pruned after an index file was saved.
CREATE TABLE vector_log (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    chunk_id      INTEGER NOT NULL,
    op            INTEGER NOT NULL  -- 1 add, 0 remove
);
CREATE INDEX vector_log_collection ON vector_log (collection_id, seq);

CREATE TABLE vector_index_state (
    collection_id INTEGER PRIMARY KEY,
    pruned_seq    INTEGER NOT NULL DEFAULT 0
);
