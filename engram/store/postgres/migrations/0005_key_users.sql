-- API keys bound to one user of their tenant (engram keys create --user): such a key reaches
-- only that user's conversations, memories and state. NULL: the key acts for the whole tenant.
ALTER TABLE api_keys ADD COLUMN user_id text;
