"""What a write of an import batch keeps on PostgreSQL (engram.store.import_contract): the
documents it replaces or deletes, with their chunks' vectors, and the version it leaves
each document at. Called by the write path (engram.store.postgres.write) inside its
transaction, on rows it has locked, so the state kept is exactly the one replaced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import psycopg

from ...types import Collection
from ..import_contract import before_state
from ..records import ChunkWrite


def save_before(
    cur: psycopg.Cursor[dict[str, Any]],
    batch: str,
    collection: Collection,
    keys: Sequence[str],
    action: str,
) -> None:
    """Keep the existing documents among ``keys`` (locked here, in key order, as writers
    lock them) as the state batch ``batch`` replaced: only the first time it touches one."""
    cur.execute(
        "SELECT id, key, title, version, content_hash, metadata, source, file_stamp"
        " FROM documents WHERE collection_id = %s AND key = ANY(%s)"
        " ORDER BY key FOR UPDATE",
        (collection.id, list(keys)),
    )
    docs = cur.fetchall()
    if not docs:
        return
    cur.execute(
        "SELECT document_id, ordinal, text, start_char, end_char, page, heading_path,"
        " text_hash, terms FROM chunks WHERE document_id = ANY(%s) ORDER BY document_id, ordinal",
        ([d["id"] for d in docs],),
    )
    chunks: dict[int, list[ChunkWrite]] = {}
    for c in cur.fetchall():
        chunks.setdefault(c["document_id"], []).append(
            ChunkWrite(
                c["ordinal"],
                c["text"],
                c["start_char"],
                c["end_char"],
                c["text_hash"],
                c["terms"],
                c["page"],
                tuple(c["heading_path"]),
            )
        )
    states = [
        json.dumps(
            before_state(
                d["title"],
                d["version"],
                d["content_hash"],
                d["metadata"],
                d["source"],
                d["file_stamp"],
                chunks.get(d["id"], []),
            ),
            ensure_ascii=False,
        )
        for d in docs
    ]
    cur.execute(
        "INSERT INTO import_documents (tenant, batch_id, collection_id, key, action, before)"
        " SELECT %s, %s, %s, u.key, %s, u.state::jsonb"
        " FROM unnest(%s::text[], %s::text[]) AS u(key, state)"
        " ON CONFLICT (batch_id, collection_id, key) DO NOTHING RETURNING key",
        (collection.tenant, batch, collection.id, action, [d["key"] for d in docs], states),
    )
    kept = {r["key"] for r in cur.fetchall()}
    hashes = sorted(
        {c.text_hash for d in docs if d["key"] in kept for c in chunks.get(d["id"], [])}
    )
    if hashes:
        cur.execute(
            "INSERT INTO import_vectors (tenant, batch_id, model_id, text_hash, vector)"
            " SELECT %s, %s, model_id, text_hash, vector FROM embeddings"
            " WHERE model_id = %s AND text_hash = ANY(%s) ON CONFLICT DO NOTHING",
            (collection.tenant, batch, collection.model_id, hashes),
        )


def note_after(
    cur: psycopg.Cursor[dict[str, Any]],
    batch: str,
    collection: Collection,
    after: Sequence[tuple[str, int | None, str | None]],
) -> None:
    """Record the (key, version, content hash) batch ``batch`` left documents with (None:
    deleted); a document it had not touched before is one it added."""
    cur.execute(
        "INSERT INTO import_documents (tenant, batch_id, collection_id, key, action,"
        " after_version, after_hash)"
        " SELECT %s, %s, %s, u.key, 'added', u.version, u.hash"
        " FROM unnest(%s::text[], %s::int[], %s::text[]) AS u(key, version, hash)"
        " ON CONFLICT (batch_id, collection_id, key) DO UPDATE"
        " SET after_version = excluded.after_version, after_hash = excluded.after_hash",
        (
            collection.tenant,
            batch,
            collection.id,
            [a[0] for a in after],
            [a[1] for a in after],
            [a[2] for a in after],
        ),
    )
