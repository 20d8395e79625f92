-- Web app sessions (engram.web.sessions): the browser holds a random token in an HttpOnly
-- cookie; the server keeps only its SHA-256 here, with who signed in (the same tenant,
-- scopes and user binding as the API key or token used) and the session's CSRF secret.
-- key_id: the API key signed in with (a revoked key ends its sessions); NULL for a JWT.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    key_id     TEXT,
    subject    TEXT NOT NULL,
    user_id    TEXT,
    csrf       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
CREATE INDEX web_sessions_key ON web_sessions (key_id);
