-- LangGraph checkpoints (engram.integrations.langgraph_checkpoint): the state of a graph's
-- thread after each step, as LangGraph's own savers keep it. A checkpoint row holds the
-- checkpoint without its channel values, serialized by the saver (``type`` names the
-- encoding), its metadata as JSON for filtering, and the version of each channel;
-- ``checkpoint_blobs`` holds each channel's value once per version, so that a step rewrites
-- only the channels it changed; ``checkpoint_writes`` holds the writes of a step's tasks
-- (pending writes), idempotent per (task, index). ``ts`` is the checkpoint's time in UTC,
-- by which threads are listed newest first; ``user_id`` (optional) is whose thread it is,
-- for erasing a user.
CREATE TABLE checkpoints (
    tenant               TEXT NOT NULL,
    thread_id            TEXT NOT NULL,
    checkpoint_ns        TEXT NOT NULL,
    checkpoint_id        TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    ts                   TEXT NOT NULL,
    user_id              TEXT,
    type                 TEXT NOT NULL,
    checkpoint           BLOB NOT NULL,
    channel_versions     TEXT NOT NULL,
    metadata             TEXT NOT NULL,
    PRIMARY KEY (tenant, thread_id, checkpoint_ns, checkpoint_id)
);
CREATE INDEX checkpoints_newest ON checkpoints (tenant, thread_id, checkpoint_ns, ts, checkpoint_id);
CREATE INDEX checkpoints_user ON checkpoints (tenant, user_id) WHERE user_id IS NOT NULL;
CREATE TABLE checkpoint_blobs (
    tenant        TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    channel       TEXT NOT NULL,
    version       TEXT NOT NULL,
    type          TEXT NOT NULL,
    blob          BLOB NOT NULL,
    PRIMARY KEY (tenant, thread_id, checkpoint_ns, channel, version)
);
CREATE TABLE checkpoint_writes (
    tenant        TEXT NOT NULL,
    thread_id     TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL,
    checkpoint_id TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    idx           INTEGER NOT NULL,
    channel       TEXT NOT NULL,
    type          TEXT NOT NULL,
    blob          BLOB NOT NULL,
    task_path     TEXT NOT NULL,
    PRIMARY KEY (tenant, thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
