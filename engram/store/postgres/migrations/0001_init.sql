-- Collections, documents and their versions, chunks with their vectors, the BM25 postings and
-- vocabulary, the embedding cache and API keys (engram.store.postgres).
--
-- Conventions shared by every PostgreSQL migration:
-- * Every tenant-owned table has `tenant text NOT NULL`, denormalised onto child rows
--   (documents, chunks, postings...) so that its policy needs no join, and
--       ALTER TABLE t ENABLE ROW LEVEL SECURITY;
--       ALTER TABLE t FORCE ROW LEVEL SECURITY;   -- the owning role is subject to it too
--       CREATE POLICY tenant_isolation ON t
--           USING (tenant = (SELECT current_setting('engram.tenant', true))
--                  OR (SELECT current_setting('engram.tenant', true)) = '*')
--           WITH CHECK (same);
--   engram sets `engram.tenant` at the start of every transaction (PostgresBase._tx); with no
--   tenant set a query sees nothing; '*' is for system operations that serve every tenant.
--   The sub-SELECTs make the setting an InitPlan, read once per query instead of twice per
--   row: BM25 scans tens of thousands of postings, and the bare calls doubled its time.
--   Superusers and BYPASSRLS roles skip policies: engram warns at start when it runs as one.
-- * Tables shared by every tenant (schema_migrations, the embedding cache) have no tenant.
-- * Ids are `bigint GENERATED ALWAYS AS IDENTITY` where SQLite has INTEGER PRIMARY KEY; text
--   ids stay text. JSON is jsonb. Timestamps are timestamptz, returned formatted exactly as the
--   SQLite backend stores them. Names and keys that are listed in order use COLLATE "C" (the
--   bytewise order SQLite uses), whatever the database's locale.
-- * Each migration runs in one transaction under pg_advisory_xact_lock, and is recorded with
--   its SHA-256 in schema_migrations (engram.store.postgres.apply_migrations).
-- * pgvector: `CREATE EXTENSION vector` needs a superuser (or a database owner on pgvector
--   >= 0.7 where it is trusted); when the extension exists already this is a no-op for anyone.

CREATE EXTENSION IF NOT EXISTS vector;

-- chunk_count and total_length are the BM25 statistics (N and the sum of chunk lengths, for
-- avgdl), kept in the transaction that writes or deletes chunks; revision moves on every
-- change (the search caches' key). Writers hold this row FOR KEY SHARE while they write and
-- update it last, after the vocabulary rows (in term order), so concurrent writers of one
-- collection run side by side and queue only for that short tail (engram.store.postgres).
CREATE TABLE collections (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL,
    name          text COLLATE "C" NOT NULL,
    model_id      text NOT NULL,
    dimension     integer NOT NULL CHECK (dimension > 0),
    language      text NOT NULL,
    settings      jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    chunk_count   bigint NOT NULL DEFAULT 0,
    total_length  bigint NOT NULL DEFAULT 0,
    revision      bigint NOT NULL DEFAULT 0,
    UNIQUE (tenant, name)
);

CREATE TABLE documents (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    key           text COLLATE "C" NOT NULL,
    title         text NOT NULL DEFAULT '',
    version       integer NOT NULL,
    content_hash  text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    source        text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (collection_id, key)
);

CREATE TABLE document_versions (
    tenant        text NOT NULL,
    document_id   bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version       integer NOT NULL,
    content_hash  text NOT NULL,
    chunk_count   integer NOT NULL,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (document_id, version)
);

-- length: number of analyzed terms (BM25's |D|). embedding: the collection's model vector, of
-- no fixed dimension in the column; each collection gets its own partial HNSW index over
-- (embedding::vector(<dimension>)) WHERE collection_id = <id>, made by create_collection.
CREATE TABLE chunks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    document_id   bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    version       integer NOT NULL,
    ordinal       integer NOT NULL,
    text          text NOT NULL,
    start_char    integer NOT NULL,
    end_char      integer NOT NULL,
    page          integer,
    heading_path  jsonb NOT NULL DEFAULT '[]',
    text_hash     text NOT NULL,
    terms         text NOT NULL,  -- analyzed keyword terms, space separated
    length        integer NOT NULL,
    embedding     vector NOT NULL
);
CREATE INDEX chunks_document ON chunks (document_id);
CREATE INDEX chunks_collection ON chunks (collection_id);
CREATE INDEX chunks_text_hash ON chunks (text_hash);

-- BM25 postings: one row per (term, chunk) with the term's frequency in the chunk and the
-- chunk's length, so that scoring reads this index only (an index-only scan once vacuumed;
-- tenant is included for the policy). No foreign key to chunks: postings are deleted by their
-- primary key from the removed chunks' terms, which needs no index on chunk_id.
CREATE TABLE postings (
    tenant        text NOT NULL,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    term          text COLLATE "C" NOT NULL,
    chunk_id      bigint NOT NULL,
    tf            integer NOT NULL,
    length        integer NOT NULL,
    -- (chunk_id int8, tf int4, length int4) big-endian: the record the keyword leg reads, so a
    -- term's postings are concatenated without per-row conversions (engram.store.postgres_bm25)
    packed        bytea GENERATED ALWAYS AS
                      (int8send(chunk_id) || int4send(tf) || int4send(length)) STORED,
    PRIMARY KEY (collection_id, term, chunk_id) INCLUDE (tf, length, tenant, packed)
);

-- Document frequency of every term of a collection (rows at 0 are deleted): the IDF of a
-- query term and the typo-expansion vocabulary, without scanning postings.
CREATE TABLE vocabulary (
    tenant        text NOT NULL,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    term          text COLLATE "C" NOT NULL,
    df            integer NOT NULL,
    PRIMARY KEY (collection_id, term)
);

-- Embedding cache shared by every tenant: one vector per (model, exact text embedded). Rows
-- no chunk refers to are removed when documents are deleted.
CREATE TABLE embeddings (
    model_id   text NOT NULL,
    text_hash  text NOT NULL,
    vector     vector NOT NULL,
    PRIMARY KEY (model_id, text_hash)
);

-- API keys: only a SHA-256 of the secret is stored; the key id is public (it is part of the
-- key) and is how a presented key is looked up (as the system tenant '*').
CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    tenant        text NOT NULL,
    name          text NOT NULL DEFAULT '',
    scopes        jsonb NOT NULL,
    secret_hash   text NOT NULL,
    created_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

ALTER TABLE collections ENABLE ROW LEVEL SECURITY;
ALTER TABLE collections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON collections
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON documents
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE document_versions ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_versions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON document_versions
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE chunks ENABLE ROW LEVEL SECURITY;
ALTER TABLE chunks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON chunks
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE postings ENABLE ROW LEVEL SECURITY;
ALTER TABLE postings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON postings
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE vocabulary ENABLE ROW LEVEL SECURITY;
ALTER TABLE vocabulary FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON vocabulary
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
