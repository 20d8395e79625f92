-- Analytics (engram.analytics): the same tables and meaning as the SQLite schema (custom event
-- kinds, the forwarding outbox, indexes for retention, cohorts and erasure).
CREATE TABLE event_kinds (
    tenant      text NOT NULL,
    name        text COLLATE "C" NOT NULL,
    schema      text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE TABLE event_outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          text NOT NULL,
    user_id         text,
    payload         text NOT NULL,
    created_at      timestamptz NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    claimed_by      text,
    last_error      text
);
CREATE INDEX event_outbox_due ON event_outbox (next_attempt_at, id);
CREATE INDEX event_outbox_user ON event_outbox (tenant, user_id) WHERE user_id IS NOT NULL;

CREATE INDEX events_time ON events (created_at);
CREATE INDEX events_user_time ON events (tenant, user_id, created_at) WHERE user_id IS NOT NULL;

ALTER TABLE event_kinds ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_kinds FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_kinds
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

ALTER TABLE event_outbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_outbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON event_outbox
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');
