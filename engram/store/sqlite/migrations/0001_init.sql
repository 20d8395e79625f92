-- Collections, documents and their versions, chunks (with their analyzed keyword terms), the
-- embedding cache and the chunk change log. The BM25 and HNSW indexes are derived from these
-- tables per collection (engram.store.derived) and can always be rebuilt from them.
-- Every collection belongs to a tenant; documents, chunks and vectors are reached only through
-- their collection, so scoping the collection lookup scopes everything.
CREATE TABLE collections (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL DEFAULT 'default',
    name        TEXT NOT NULL,
    model_id    TEXT NOT NULL,
    dimension   INTEGER NOT NULL,
    language    TEXT NOT NULL,
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    UNIQUE (tenant, name)
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
    text_hash     TEXT NOT NULL,
    terms         TEXT NOT NULL  -- analyzed keyword terms, space separated
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

-- Every chunk added to or removed from a collection, in commit order. The derived index files
-- are behind when their saved seq is below the log's head: they replay the newer entries.
-- pruned_seq marks how far the log was pruned after index files were saved.
CREATE TABLE chunk_log (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    chunk_id      INTEGER NOT NULL,
    op            INTEGER NOT NULL  -- 1 add, 0 remove
);
CREATE INDEX chunk_log_collection ON chunk_log (collection_id, seq);

CREATE TABLE index_state (
    collection_id INTEGER PRIMARY KEY,
    pruned_seq    INTEGER NOT NULL DEFAULT 0
);

-- API keys: only a SHA-256 of the secret is stored; the key id is public (it is part of the
-- key) and is how a presented key is looked up.
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    name          TEXT NOT NULL DEFAULT '',
    scopes        TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT,
    last_used_at  TEXT
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

-- Conversations and long-term memories of the users of a tenant (engram.memory). Every row is
-- owned by one (tenant, user_id): lookups always filter on both, so a wrong tenant finds
-- nothing, and erasing a user deletes exactly these rows.
CREATE TABLE conversations (
    id          TEXT PRIMARY KEY,
    tenant      TEXT NOT NULL DEFAULT 'default',
    user_id     TEXT NOT NULL,
    title       TEXT,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX conversations_user ON conversations (tenant, user_id, updated_at);

CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content         TEXT NOT NULL,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- content_hash is the SHA-256 of the normalised content (case-folded, whitespace collapsed):
-- the exact-duplicate lookup. embedding is float32 bytes of model_id's vector. source says
-- where a memory came from (a conversation or message id, or 'api'). A deleted memory keeps
-- its row (deleted_at set) so that its history stays readable, until its user is erased.
CREATE TABLE memories (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL DEFAULT 'default',
    user_id       TEXT NOT NULL,
    agent_id      TEXT,
    content       TEXT NOT NULL,
    metadata      TEXT NOT NULL DEFAULT '{}',
    content_hash  TEXT NOT NULL,
    embedding     BLOB NOT NULL,
    model_id      TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT 'api',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    deleted_at    TEXT
);
CREATE INDEX memories_user ON memories (tenant, user_id, deleted_at);
CREATE INDEX memories_hash ON memories (tenant, user_id, content_hash);

CREATE TABLE memory_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id    TEXT NOT NULL REFERENCES memories(id) ON DELETE CASCADE,
    event        TEXT NOT NULL CHECK (event IN ('add', 'update', 'delete', 'merge')),
    old_content  TEXT,
    new_content  TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX memory_history_memory ON memory_history (memory_id, id);

-- Analytics events recorded locally (search performed, result clicked, message sent, document
-- ingested, answer rated), for GET /v1/admin/stats.
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    kind        TEXT NOT NULL,
    user_id     TEXT,
    key_id      TEXT,
    query       TEXT,
    result_count INTEGER,
    latency_ms  REAL,
    data        TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL
);
CREATE INDEX events_tenant_kind_time ON events (tenant, kind, created_at);

-- Background jobs (large ingestion batches): claimed by a worker, resumed after a restart
-- (engram.jobs). payload holds the work (the documents) until the job finishes, then '{}'.
-- updated_at is the running worker's heartbeat: a running job whose updated_at is older than
-- the lease belongs to a dead process and is queued again.
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    collection   TEXT,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    payload      TEXT NOT NULL,
    progress     TEXT NOT NULL DEFAULT '{}',
    result       TEXT,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX jobs_status ON jobs (status, created_at);
CREATE INDEX jobs_tenant ON jobs (tenant, created_at);
