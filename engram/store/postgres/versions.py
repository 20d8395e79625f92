"""The PostgreSQL store's kept versions (migration ``0011_versions``): each version's text,
title, metadata and chunk spans, written with the version (inside the write path's
transaction, while it holds the document rows), read back, and dropped by the retention rule
or a purge. Only the current version's chunks are in the chunks table, so nothing here
touches the postings or the vectors that search reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg

from ...errors import DocumentNotFound, InvalidInput
from ...types import Collection
from ..records import DocumentVersion, DocumentWrite, StoredVersion
from ..versions import chunk_rows, pack_text, unpack_text, version_chunk
from .connection import PostgresBase, iso
from .sql import dumps

# The versions of documents (u.doc) beyond their newest u.keep, deleted (their chunk rows go
# by ON DELETE CASCADE), with the text hashes those chunks used: every part of the statement
# sees the rows as they were before it, so the hashes are still readable.
_DROP = (
    "WITH r AS ("
    " SELECT v.document_id, v.version, u.keep,"
    " row_number() OVER (PARTITION BY v.document_id ORDER BY v.version DESC) AS rn"
    " FROM document_versions v JOIN unnest(%s::bigint[], %s::int[]) AS u(doc, keep)"
    " ON v.document_id = u.doc WHERE u.keep > 0"
    "), gone AS ("
    " DELETE FROM document_versions v USING r"
    " WHERE v.document_id = r.document_id AND v.version = r.version AND r.rn > r.keep"
    " RETURNING v.document_id, v.version"
    ") SELECT (SELECT count(*) FROM gone) AS n, coalesce((SELECT array_agg(DISTINCT c.text_hash)"
    " FROM version_chunks c JOIN gone g ON c.document_id = g.document_id"
    " AND c.version = g.version), '{}') AS hashes"
)


class PostgresVersionsMixin(PostgresBase):
    """Kept versions in the store's PostgreSQL database (the write path, a subclass, keeps
    each new version through :meth:`_record_versions`)."""

    if TYPE_CHECKING:  # provided by PostgresWriteMixin

        @staticmethod
        def _hold(cur: psycopg.Cursor[dict[str, Any]], collection: Collection) -> bool: ...
        @staticmethod
        def _drop_orphan_embeddings(
            cur: psycopg.Cursor[dict[str, Any]], model_id: str, hashes: Sequence[str]
        ) -> None: ...

    @staticmethod
    def _record_versions(
        cur: psycopg.Cursor[dict[str, Any]],
        tenant: str,
        docs: Sequence[DocumentWrite],
        ids: dict[str, tuple[int, int]],
    ) -> list[str]:
        """Keep the new version of each of ``docs`` (locked by the caller; ``ids``: key →
        (document id, its new version)), then drop the versions beyond each one's
        ``keep_versions``; returns the text hashes of the dropped versions' chunks."""
        cur.execute(
            "INSERT INTO document_versions (tenant, document_id, version, content_hash,"
            " chunk_count, created_at, title, metadata, source, body, restored_from)"
            " SELECT %s, u.doc, u.version, u.hash, u.n, now(), u.title, u.meta::jsonb, u.source,"
            " u.body, u.restored"
            " FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::int[], %s::text[], %s::text[],"
            " %s::text[], %s::bytea[], %s::int[])"
            " AS u(doc, version, hash, n, title, meta, source, body, restored)",
            (
                tenant,
                [ids[d.key][0] for d in docs],
                [ids[d.key][1] for d in docs],
                [d.content_hash for d in docs],
                [len(d.chunks) for d in docs],
                [d.title for d in docs],
                [dumps(d.metadata) for d in docs],
                [d.source for d in docs],
                [pack_text(d.text) for d in docs],
                [d.restored_from for d in docs],
            ),
        )
        rows = [(ids[d.key][0], ids[d.key][1], *row) for d in docs for row in chunk_rows(d.chunks)]
        if rows:
            columns = list(zip(*rows))
            cur.execute(
                "INSERT INTO version_chunks (tenant, document_id, version, ordinal, start_char,"
                " end_char, page, heading_path, text_hash)"
                " SELECT %s, u.doc, u.version, u.ordinal, u.s, u.e, u.page, u.heading::jsonb,"
                " u.hash FROM unnest(%s::bigint[], %s::int[], %s::int[], %s::int[], %s::int[],"
                " %s::int[], %s::text[], %s::text[])"
                " AS u(doc, version, ordinal, s, e, page, heading, hash)",
                (tenant, *[list(c) for c in columns]),
            )
        keep = [(ids[d.key][0], d.keep_versions) for d in docs if d.keep_versions > 0]
        if not keep:
            return []
        cur.execute(_DROP, ([k[0] for k in keep], [k[1] for k in keep]))
        found = cur.fetchone()
        return list(found["hashes"]) if found else []

    def _version_hashes(self, cur: psycopg.Cursor[dict[str, Any]], doc_ids: list[int]) -> list[str]:
        """Text hashes of every kept version's chunks of these documents."""
        cur.execute(
            "SELECT DISTINCT text_hash FROM version_chunks WHERE document_id = ANY(%s)", (doc_ids,)
        )
        return [r["text_hash"] for r in cur.fetchall()]

    def document_version(
        self, collection: Collection, key: str, version: int | None = None
    ) -> StoredVersion:
        with self._tx(collection.tenant, snapshot=True) as cur:
            cur.execute(
                "SELECT id, version FROM documents WHERE collection_id = %s AND key = %s",
                (collection.id, key),
            )
            doc = cur.fetchone()
            if doc is None:
                raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
            wanted = doc["version"] if version is None else version
            cur.execute(
                "SELECT version, content_hash, created_at, title, metadata, source, body,"
                " restored_from FROM document_versions WHERE document_id = %s AND version = %s",
                (doc["id"], wanted),
            )
            row = cur.fetchone()
            if row is None:
                raise DocumentNotFound(
                    f"document {key!r} has no version {wanted}",
                    hint="list the versions it keeps: engram versions list KEY",
                )
            cur.execute(
                "SELECT ordinal, start_char, end_char, page, heading_path, text_hash"
                " FROM version_chunks WHERE document_id = %s AND version = %s ORDER BY ordinal",
                (doc["id"], wanted),
            )
            chunks = [version_chunk(list(r.values())) for r in cur.fetchall()]
        return StoredVersion(
            key=key,
            version=row["version"],
            current=row["version"] == doc["version"],
            content_hash=row["content_hash"],
            created_at=iso(row["created_at"], timespec="seconds") or "",
            title=row["title"] or "",
            metadata=row["metadata"] or {},
            source=row["source"] or "",
            text=unpack_text(row["body"]),
            chunks=chunks,
            restored_from=row["restored_from"],
        )

    def document_versions(self, collection: Collection, key: str) -> list[DocumentVersion]:
        with self._tx(collection.tenant, snapshot=True) as cur:
            cur.execute(
                "SELECT id, version FROM documents WHERE collection_id = %s AND key = %s",
                (collection.id, key),
            )
            doc = cur.fetchone()
            if doc is None:
                raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
            cur.execute(
                "SELECT v.version, v.content_hash, v.chunk_count, v.created_at,"
                " v.body IS NOT NULL OR (v.version = %s AND EXISTS (SELECT 1 FROM version_chunks c"
                " WHERE c.document_id = v.document_id AND c.version = v.version)) AS kept,"
                " v.restored_from FROM document_versions v WHERE v.document_id = %s"
                " ORDER BY v.version",
                (doc["version"], doc["id"]),
            )
            return [
                DocumentVersion(
                    r["version"],
                    r["content_hash"],
                    r["chunk_count"],
                    iso(r["created_at"], timespec="seconds") or "",
                    bool(r["kept"]),
                    r["restored_from"],
                )
                for r in cur.fetchall()
            ]

    def purge_versions(
        self, collection: Collection, *, keep: int, keys: Sequence[str] | None = None
    ) -> int:
        if keep < 1:
            raise InvalidInput("keep at least 1 version (the current one)")
        with self._tx(collection.tenant) as cur:
            if not self._hold(cur, collection):
                return 0
            # The documents are locked in key order, as writers upsert them (phase 3 of the
            # write path's lock order), so a purge and a write of one document take turns.
            if keys is None:
                cur.execute(
                    "SELECT id FROM documents WHERE collection_id = %s"
                    ' ORDER BY key COLLATE "C" FOR UPDATE',
                    (collection.id,),
                )
            else:
                cur.execute(
                    "SELECT id FROM documents WHERE collection_id = %s AND key = ANY(%s)"
                    ' ORDER BY key COLLATE "C" FOR UPDATE',
                    (collection.id, list(keys)),
                )
            doc_ids = [r["id"] for r in cur.fetchall()]
            if not doc_ids:
                return 0
            cur.execute(_DROP, (doc_ids, [keep] * len(doc_ids)))
            found = cur.fetchone()
            dropped = int(found["n"]) if found else 0
            self._drop_orphan_embeddings(cur, collection.model_id, found["hashes"] if found else [])
        return dropped
