"""Citations: which numbered passages an answer cites, and where each one comes from."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engram.types import SearchResult, SourceKind

# "[2]", "[1, 3]", "[2-4]", "[^1]" (footnote style some models prefer); "[1](url)" is a link.
_CITE = re.compile(r"\[\^?(\d+(?:\s*[,;\-–]\s*\^?\d+)*)\](?!\()")
_RANGE = re.compile(r"(\d+)\s*[\-–]\s*\^?(\d+)")
_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class Citation:
    """Passage ``n`` of the prompt, located in its source. ``kind`` says which: a
    ``document`` (key, version, character span), a turn of an earlier ``conversation``
    (``document`` is the conversation id, ``message_id`` the turn), or a ``memory`` of the
    user (``document`` is the memory id). ``collection``: which collection a document is
    in."""

    n: int
    document: str
    version: int
    start: int
    end: int
    title: str = ""
    page: int | None = None
    kind: SourceKind = "document"
    message_id: int | None = None
    collection: str | None = None  # a document's collection (a search may span several)

    @classmethod
    def of(cls, n: int, passage: SearchResult) -> Citation:
        """The citation of ``passage``, numbered ``n``."""
        return cls(
            n,
            passage.document_key,
            passage.version,
            passage.start,
            passage.end,
            passage.title,
            passage.page,
            passage.kind,
            passage.chunk_id if passage.kind == "conversation" else None,
            (passage.collection or None) if passage.kind == "document" else None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Citation:
        """The citation :meth:`to_dict` wrote (what the HTTP API sends)."""
        start, end = data["span"]
        return cls(
            int(data["n"]),
            str(data["document"]),
            int(data["version"]),
            int(start),
            int(end),
            data.get("title") or "",
            data.get("page"),
            data.get("kind", "document"),
            data.get("message_id"),
            data.get("collection"),
        )

    def to_dict(self) -> dict[str, Any]:
        """``{n, kind, document, version, span: [start, end], title, page, message_id,
        collection}`` (``message_id``: None but for a conversation turn; ``collection``: a
        document's collection, else None)."""
        return {
            "n": self.n,
            "kind": self.kind,
            "document": self.document,
            "version": self.version,
            "span": [self.start, self.end],
            "title": self.title,
            "page": self.page,
            "message_id": self.message_id,
            "collection": self.collection,
        }


def cited_numbers(text: str, count: int) -> list[int]:
    """Passage numbers cited in ``text`` (1..count only: a model may invent a [9]), sorted."""
    found: set[int] = set()
    for match in _CITE.finditer(text):
        group = match.group(1)
        for low, high in _RANGE.findall(group):
            # A range is expanded only within the passages that exist, so "[1-99999]" is cheap.
            found.update(range(max(1, int(low)), min(count, int(high)) + 1))
        found.update(int(n) for n in _NUMBER.findall(_RANGE.sub("", group)))
    return sorted(n for n in found if 1 <= n <= count)


def citations_for(text: str, passages: Sequence[SearchResult]) -> list[Citation]:
    """The passages ``text`` cites; every passage when it cites none, since the answer was
    still drawn from them and a reader needs somewhere to check it."""
    numbers = cited_numbers(text, len(passages)) or range(1, len(passages) + 1)
    return [Citation.of(n, passages[n - 1]) for n in numbers]
