-- Analytics (engram.analytics): custom event kinds with their JSON schemas, the outbox of
-- events waiting to be forwarded to an external analytics endpoint, and the indexes that
-- retention (purge by age), cohorts and erasure read.
CREATE TABLE event_kinds (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    schema      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- One row per event to forward. A sender claims due rows by pushing next_attempt_at past its
-- lease (claimed_by names it), deletes them once the endpoint took them, or gives them back
-- with attempts + 1 and an exponential backoff: a crash mid-send frees them when the lease ends.
CREATE TABLE event_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT NOT NULL,
    user_id         TEXT,
    payload         TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    claimed_by      TEXT,
    last_error      TEXT
);
CREATE INDEX event_outbox_due ON event_outbox (next_attempt_at, id);
CREATE INDEX event_outbox_user ON event_outbox (tenant, user_id) WHERE user_id IS NOT NULL;

CREATE INDEX events_time ON events (created_at);
CREATE INDEX events_user_time ON events (tenant, user_id, created_at) WHERE user_id IS NOT NULL;
