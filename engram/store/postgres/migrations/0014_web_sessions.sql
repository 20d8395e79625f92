-- Web app sessions (engram.web.sessions): the browser holds a random token in an HttpOnly
-- cookie; the server keeps only its SHA-256 here, with who signed in (the same tenant,
-- scopes and user binding as the API key or token used) and the session's CSRF secret.
-- key_id: the API key signed in with (a revoked key ends its sessions); NULL for a JWT.
-- Read before the tenant is known (like api_keys): the system session reads it.
CREATE TABLE web_sessions (
    token_hash text PRIMARY KEY,
    tenant     text NOT NULL,
    scopes     jsonb NOT NULL,
    key_id     text,
    subject    text NOT NULL,
    user_id    text,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
CREATE INDEX web_sessions_key ON web_sessions (key_id);

ALTER TABLE web_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE web_sessions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON web_sessions
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
