"""The PostgreSQL store's part of autocompletion (engram.search.suggest): indexed terms by
prefix and the collection's document titles.

A prefix is a range of the ``vocabulary`` primary key (``collection_id, term``, ``term``
being ``COLLATE "C"``): ``prefix <= term < prefix || U+10FFFF``. Unlike ``LIKE`` or
``starts_with`` rewritten by the planner, text comparisons are leakproof, so under the tenant
policy they stay index conditions for an ordinary role: each prefix costs one index range
scan, however large the vocabulary. Every prefix (the typed one, or its one-edit variants)
is one row of an ``unnest`` joined laterally to its scan, so a suggestion is one statement;
the few chunk texts each chosen term's surface word is read from come in the same one.
"""

from __future__ import annotations

from collections.abc import Container, Sequence

from ...search.bm25 import LAST_CHAR
from ...types import Collection
from ..records import TermCompletion
from .connection import PostgresBase

_COMPLETE = (
    "WITH found AS (SELECT DISTINCT t.term, t.df FROM unnest(%(lows)s::text[]) AS r(low)"
    " CROSS JOIN LATERAL (SELECT v.term, v.df FROM vocabulary v"
    "  WHERE v.collection_id = %(cid)s AND v.term >= r.low AND v.term < r.low || %(last)s"
    "  AND v.df > 0 ORDER BY v.df DESC, v.term LIMIT %(limit)s) t"
    " UNION SELECT term, df FROM vocabulary"
    "  WHERE collection_id = %(cid)s AND term = ANY(%(exact)s) AND df > 0),"
    " best AS (SELECT term, df FROM found ORDER BY df DESC, term LIMIT %(limit)s)"
    " SELECT b.term, b.df, ARRAY(SELECT c.text FROM postings p JOIN chunks c ON c.id = p.chunk_id"
    "  WHERE p.collection_id = %(cid)s AND p.term = b.term LIMIT %(samples)s) AS texts"
    " FROM best b ORDER BY b.df DESC, b.term"
)


class PostgresSuggestMixin(PostgresBase):
    """Autocompletion sources (a mixin of PostgresStore)."""

    def complete_terms(
        self,
        collection: Collection,
        prefixes: Sequence[str],
        *,
        limit: int,
        samples: int,
        exact: Sequence[str] = (),
        known: Container[str] = (),
    ) -> list[TermCompletion]:
        # The texts of ``known`` terms are read too: the same statement, and cheaper on the
        # server than sending it the caller's list of terms.
        if not (prefixes or exact) or limit <= 0:
            return []
        with self._tx(collection.tenant) as cur:
            cur.execute(
                _COMPLETE,
                {
                    "lows": list(prefixes),
                    "exact": list(exact),
                    "cid": collection.id,
                    "last": LAST_CHAR,
                    "limit": limit,
                    "samples": samples,
                },
            )
            return [TermCompletion(r["term"], r["df"], list(r["texts"])) for r in cur.fetchall()]

    def document_titles(self, collection: Collection) -> dict[str, int]:
        with self._tx(collection.tenant) as cur:
            cur.execute(
                "SELECT title, count(*) AS n FROM documents WHERE collection_id = %s"
                " AND title IS NOT NULL AND title <> '' GROUP BY title",
                (collection.id,),
            )
            return {r["title"]: int(r["n"]) for r in cur.fetchall()}
