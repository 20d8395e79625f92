-- Agent state (engram.state): JSON values under a key in a namespace, with a version per key
-- for compare-and-set, an optional expiry, and an optional embedding of chosen fields for
-- semantic search. ``namespace`` is the path of the namespace ("user/42/agent/planner");
-- listing by prefix compares it bytewise (BINARY collation), like PostgreSQL's "C".
CREATE TABLE state (
    tenant      TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    expires_at  TEXT,
    embedding   BLOB,
    model_id    TEXT,
    PRIMARY KEY (tenant, namespace, key)
);
CREATE INDEX state_expiry ON state (expires_at) WHERE expires_at IS NOT NULL;
