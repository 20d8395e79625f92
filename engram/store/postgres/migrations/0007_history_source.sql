-- Where each change of a memory came from: 'api' (a client), or the conversation and message
-- ids an extraction drew it from ('conversation:<id>#<message id>,…'). NULL for older rows.
ALTER TABLE memory_history ADD COLUMN source text;
