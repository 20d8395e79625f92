"""The embedded store's part of autocompletion (engram.search.suggest): indexed terms by
prefix, read from the collection's in-memory BM25 index (a bisection of its sorted
vocabulary, caught up with the chunk log like every search, so terms another process added
are there), with a few chunk texts per term; and the collection's document titles."""

from __future__ import annotations

from collections.abc import Sequence

from ...types import Collection
from ..records import TermCompletion
from .retrieval import SQLiteRetrievalMixin
from .sql import batches


class SQLiteSuggestMixin(SQLiteRetrievalMixin):
    """Autocompletion sources (a mixin of SQLiteStore)."""

    def complete_terms(
        self,
        collection: Collection,
        prefixes: Sequence[str],
        *,
        limit: int,
        samples: int,
        exact: Sequence[str] = (),
    ) -> list[TermCompletion]:
        found = self._catch_up(collection).keywords.completions(prefixes, limit, exact)[:limit]
        texts = self.term_texts(collection, [t for t, _ in found], samples=samples)
        return [TermCompletion(term, df, texts.get(term, [])) for term, df in found]

    def term_texts(
        self, collection: Collection, terms: Sequence[str], *, samples: int
    ) -> dict[str, list[str]]:
        if samples <= 0:
            return {term: [] for term in terms}
        keywords = self._catch_up(collection).keywords
        sampled = {term: keywords.sample(term, samples) for term in terms}
        texts: dict[int, str] = {}
        for part in batches(sorted({c for ids in sampled.values() for c in ids})):
            rows = self._read(
                "SELECT id, text FROM chunks WHERE collection_id = ?"
                f" AND id IN ({','.join('?' * len(part))})",
                (collection.id, *part),
            )
            texts.update((int(i), str(t)) for i, t in rows)
        return {term: [texts[c] for c in ids if c in texts] for term, ids in sampled.items()}

    def document_titles(self, collection: Collection) -> dict[str, int]:
        rows = self._read(
            "SELECT title, count(*) FROM documents WHERE collection_id = ?"
            " AND title IS NOT NULL AND title != '' GROUP BY title",
            (collection.id,),
        )
        return {str(title): int(n) for title, n in rows}
