"""Documents for the store contract tests: chunks with real analyzed terms and hash-embedder
vectors, written straight into a store."""

from __future__ import annotations

import hashlib

from engram.providers.embedders.fake import HashEmbedder
from engram.search.analyzer import get_analyzer
from engram.store.contract import Store
from engram.store.records import ChunkWrite, DocumentWrite
from engram.types import Collection

EMB = HashEmbedder(dimension=32)


AN = get_analyzer("en")


def make_doc(
    key: str, *texts: str, metadata: dict | None = None, title: str = ""
) -> tuple[DocumentWrite, dict]:
    chunks, vectors = [], {}
    pos = 0
    for i, text in enumerate(texts):
        h = hashlib.sha256(text.encode()).hexdigest()[:32]
        chunks.append(ChunkWrite(i, text, pos, pos + len(text), h, " ".join(AN.terms(text))))
        vectors[h] = EMB.embed_batch([text])[0]
        pos += len(text) + 1
    content = hashlib.sha256("|".join(texts).encode()).hexdigest()
    return DocumentWrite(key, title or key, content, chunks, metadata or {}), vectors


def put(store: Store, coll: Collection, key: str, *texts: str, **kw) -> None:
    doc, vecs = make_doc(key, *texts, **kw)
    store.write_documents(coll, [doc], vecs)


def keys_of(store: Store, coll: Collection, hits: list[tuple[int, float]]) -> list[str]:
    records = store.get_chunks(coll, [i for i, _ in hits])
    return [records[i].document_key for i, _ in hits]
