-- Typo candidates by trigram index. A query term found nowhere is expanded to the indexed
-- terms within 1 or 2 edits of it (engram.search.fuzzy). PostgresStore.spelling_candidates
-- asks the database for the terms containing one of the term's pieces unchanged
-- (``term LIKE '%piece%'``, a pigeonhole filter that cannot miss a neighbour); pg_trgm's GIN
-- index answers such patterns without reading the collection's whole vocabulary. The exact
-- Levenshtein distance is then taken by the client, as on the embedded backend, so results are
-- the same with or without the index.
--
-- pg_trgm is a contrib module that most servers and managed services ship, and a trusted
-- extension (PostgreSQL >= 13): the database owner may create it. Where it is not installed
-- (the pgserver wheel does not ship it) or may not be created, the same query runs over the
-- collection's vocabulary without the index: slower on very large vocabularies, same answer.
DO $$
DECLARE
    opclass_schema name;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_trgm not created (%): typo candidates are found without it', SQLERRM;
        END;
    END IF;
    -- Wherever the extension lives (some services install extensions in their own schema).
    SELECT n.nspname INTO opclass_schema FROM pg_opclass o
        JOIN pg_namespace n ON n.oid = o.opcnamespace
        JOIN pg_am a ON a.oid = o.opcmethod
        WHERE o.opcname = 'gin_trgm_ops' AND a.amname = 'gin' LIMIT 1;
    IF opclass_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX vocabulary_term_trigrams ON vocabulary USING gin (term %I.gin_trgm_ops)',
            opclass_schema);
    END IF;
END
$$;
