"""The embedded store's part of autocompletion (engram.search.suggest): indexed terms by
prefix, read from the collection's in-memory BM25 index (a bisection of its sorted
vocabulary, caught up with the chunk log like every search, so terms another process added
are there), with a few chunk texts per term (of the terms the caller has not read: a
statement saved); and the collection's document titles."""

from __future__ import annotations

from collections.abc import Container, Sequence

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
        known: Container[str] = (),
    ) -> list[TermCompletion]:
        keywords = self._catch_up(collection).keywords
        found = keywords.completions(prefixes, limit, exact)[:limit]
        # One statement for the texts of the terms the caller has not read yet.
        sampled = {t: keywords.sample(t, samples) for t, _ in found if t not in known}
        texts: dict[int, str] = {}
        for part in batches(sorted({c for ids in sampled.values() for c in ids})):
            rows = self._read(
                "SELECT id, text FROM chunks WHERE collection_id = ?"
                f" AND id IN ({','.join('?' * len(part))})",
                (collection.id, *part),
            )
            texts.update((int(i), str(t)) for i, t in rows)
        return [
            TermCompletion(term, df, [texts[c] for c in sampled.get(term, ()) if c in texts])
            for term, df in found
        ]

    def document_titles(self, collection: Collection) -> dict[str, int]:
        rows = self._read(
            "SELECT title, count(*) FROM documents WHERE collection_id = ?"
            " AND title IS NOT NULL AND title != '' GROUP BY title",
            (collection.id,),
        )
        return {str(title): int(n) for title, n in rows}
