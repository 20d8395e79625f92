-- Conversation recall: a message may name its speaker (a person's name in a chat between
-- people, or an agent's), and is indexed for recall (BM25 + vector, in a collection of the
-- user's own, engram.memory.recall) after it is written. indexed = false marks the messages
-- not yet in that index: appends, imports, restores and messages from before this migration
-- are all caught up from it, so none is ever left out of recall.
ALTER TABLE messages ADD COLUMN speaker text;
ALTER TABLE messages ADD COLUMN indexed boolean NOT NULL DEFAULT false;
CREATE INDEX messages_unindexed ON messages (conversation_id, id) WHERE NOT indexed;
