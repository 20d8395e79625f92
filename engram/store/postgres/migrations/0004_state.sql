-- Agent state (engram.state): the same table and meaning as the SQLite schema. ``namespace``
-- is compared bytewise (COLLATE "C") so that prefix listing orders and matches like SQLite.
CREATE TABLE state (
    tenant      text NOT NULL,
    namespace   text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    value       jsonb NOT NULL,
    version     bigint NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    expires_at  timestamptz,
    embedding   vector,
    model_id    text,
    PRIMARY KEY (tenant, namespace, key)
);
CREATE INDEX state_expiry ON state (expires_at) WHERE expires_at IS NOT NULL;

ALTER TABLE state ENABLE ROW LEVEL SECURITY;
ALTER TABLE state FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON state
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
