-- Conversations, memories, analytics events and background jobs (engram.store.postgres_memory,
-- postgres_events, postgres_jobs). Same tables and meaning as the SQLite schema; the
-- conventions of 0001_init.sql apply: every table has a ``tenant`` column guarded by the
-- tenant_isolation row-level-security policy, timestamps are timestamptz, JSON is jsonb.
-- ``seq`` columns play the part of SQLite's rowid: the insertion order that breaks ties
-- between equal timestamps, so both backends list rows in the same order.

CREATE TABLE conversations (
    id          text PRIMARY KEY,
    tenant      text NOT NULL,
    user_id     text NOT NULL,
    title       text,
    metadata    jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX conversations_user ON conversations (tenant, user_id, updated_at);

CREATE TABLE messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          text NOT NULL,
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    content         text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

-- content_hash: SHA-256 of the normalised content (the exact-duplicate key). embedding: the
-- model's vector (no fixed dimension: memories are scored exactly per user, no ANN index).
-- A deleted memory keeps its row (deleted_at set) until its user is erased.
CREATE TABLE memories (
    id            text PRIMARY KEY,
    tenant        text NOT NULL,
    user_id       text NOT NULL,
    agent_id      text,
    content       text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    content_hash  text NOT NULL,
    embedding     vector NOT NULL,
    model_id      text NOT NULL,
    source        text NOT NULL DEFAULT 'api',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    deleted_at    timestamptz,
    seq           bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX memories_user ON memories (tenant, user_id, deleted_at);
CREATE INDEX memories_hash ON memories (tenant, user_id, content_hash);

CREATE TABLE memory_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant       text NOT NULL,
    memory_id    text NOT NULL REFERENCES memories (id) ON DELETE CASCADE,
    event        text NOT NULL CHECK (event IN ('add', 'update', 'delete', 'merge')),
    old_content  text,
    new_content  text,
    created_at   timestamptz NOT NULL
);
CREATE INDEX memory_history_memory ON memory_history (memory_id, id);

-- Analytics events (search performed, result clicked, message sent, answer rated), for
-- GET /v1/admin/stats.
CREATE TABLE events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL,
    kind          text NOT NULL,
    user_id       text,
    key_id        text,
    query         text,
    result_count  integer,
    latency_ms    double precision,
    data          jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL
);
CREATE INDEX events_tenant_kind_time ON events (tenant, kind, created_at);
CREATE INDEX events_user ON events (tenant, user_id) WHERE user_id IS NOT NULL;

-- Background jobs (engram.jobs). payload holds the work until the job finishes, then '{}'.
-- updated_at is the running worker's heartbeat (its lease). Workers in any number of
-- processes claim the oldest queued job with SELECT ... FOR UPDATE SKIP LOCKED (jobs_queue).
-- payload, progress and result are never queried: json (stored as written, key order kept as
-- in the SQLite backend, and cheaper to write than jsonb for large batches).
CREATE TABLE jobs (
    id           text PRIMARY KEY,
    tenant       text NOT NULL,
    kind         text NOT NULL,
    collection   text,
    status       text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    payload      json NOT NULL,
    progress     json NOT NULL DEFAULT '{}',
    result       json,
    error        text,
    attempts     integer NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz,
    seq          bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX jobs_queue ON jobs (created_at, seq) WHERE status = 'queued';
CREATE INDEX jobs_lease ON jobs (updated_at) WHERE status = 'running';
CREATE INDEX jobs_tenant ON jobs (tenant, created_at);

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversations
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON messages
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE memories ENABLE ROW LEVEL SECURITY;
ALTER TABLE memories FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memories
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE memory_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memory_history
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON events
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
