-- Versions of posting-list blocks, for the clients that cache posting lists.
--
-- A term's postings are split by chunk id into blocks of 65,536 ids (block = chunk_id >> 16);
-- one row per (collection, term, block) holding how many postings fall in it. Every
-- transaction that adds or removes a posting rewrites the row of its block (even when the
-- count nets to zero), so the row's xmin, the id of the last transaction that wrote it, names
-- the block's content. A search process keeps the posting blocks of frequent terms decoded in
-- memory and has PostgreSQL send, in the same statement and snapshot as everything else it
-- reads, only the blocks whose xmin differs from its copy (engram.store.postgres_bm25): a
-- write re-reads the blocks it touched, not the whole posting list of every term it touched.
-- Rows reaching 0 postings are deleted, like vocabulary rows.

CREATE TABLE posting_blocks (
    tenant        text NOT NULL,
    collection_id bigint NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    term          text COLLATE "C" NOT NULL,
    block         bigint NOT NULL,
    postings      integer NOT NULL,
    PRIMARY KEY (collection_id, term, block)
);

ALTER TABLE posting_blocks ENABLE ROW LEVEL SECURITY;
ALTER TABLE posting_blocks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON posting_blocks
    USING (tenant = (SELECT current_setting('engram.tenant', true))
           OR (SELECT current_setting('engram.tenant', true)) = '*')
    WITH CHECK (tenant = (SELECT current_setting('engram.tenant', true))
                OR (SELECT current_setting('engram.tenant', true)) = '*');

-- Existing postings (a migration runs with the tenant unset: this role owns the table, and
-- FORCE applies the policy to it, so the setting is widened for this transaction only).
SELECT set_config('engram.tenant', '*', true);
INSERT INTO posting_blocks (tenant, collection_id, term, block, postings)
    SELECT tenant, collection_id, term, chunk_id >> 16, count(*)
    FROM postings GROUP BY tenant, collection_id, term, chunk_id >> 16;
