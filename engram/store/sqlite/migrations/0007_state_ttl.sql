-- The TTL an item was written with (seconds; NULL: no expiry), so that a read may push its
-- expiry back by as much (LangGraph's refresh_ttl).
ALTER TABLE state ADD COLUMN ttl_seconds REAL;
