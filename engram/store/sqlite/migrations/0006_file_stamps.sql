-- The fingerprint of the file a document was loaded from (engram.ingest.stamps: size,
-- modification time, SHA-256 of its bytes, and everything else that decides its documents),
-- so that a re-ingest skips an unchanged file before reading or parsing it. NULL: not from a
-- file, or from one that had unreadable records. Found by the file's path (documents.source).
ALTER TABLE documents ADD COLUMN file_stamp TEXT;
CREATE INDEX documents_file_source ON documents (collection_id, source) WHERE file_stamp IS NOT NULL;
