"""The embedded store's kept versions (migration ``0009_versions``): each version's text,
title, metadata and chunk spans, written with the version, read back, and dropped by the
retention rule or a purge. Only the current version's chunks are in the chunks table, so
nothing here touches the keyword or vector index."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import DocumentNotFound, InvalidInput
from ...types import Collection
from ..records import DocumentVersion, DocumentWrite, StoredVersion
from ..versions import chunk_rows, dropped_versions, pack_text, unpack_text, version_chunk
from .session import SQLiteSessions
from .sql import batches

INSERT_VERSION = (
    "INSERT INTO document_versions (document_id, version, content_hash, chunk_count,"
    " created_at, title, metadata, source, body, restored_from)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_VERSION_CHUNK = "INSERT INTO version_chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def version_values(
    doc_id: int, version: int, doc: DocumentWrite, now: str, metadata: str | None = None
) -> tuple[Any, ...]:
    """A kept version's row (INSERT_VERSION); ``metadata``: the document's as JSON, if known."""
    return (
        doc_id,
        version,
        doc.content_hash,
        len(doc.chunks),
        now,
        doc.title,
        metadata or json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True),
        doc.source,
        pack_text(doc.text),
        doc.restored_from,
    )


class SQLiteVersionsMixin(SQLiteSessions):
    """Kept versions in the store's SQLite file."""

    # Provided by SQLiteStore.
    _conn: sqlite3.Connection
    if TYPE_CHECKING:

        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
        def _drop_orphan_embeddings(self, model_id: str, hashes: Sequence[str]) -> None: ...

    def _record_version(
        self, doc_id: int, version: int, doc: DocumentWrite, now: str, metadata: str | None = None
    ) -> list[str]:
        """Keep version ``version`` of a document (inside the caller's write transaction),
        then drop the versions beyond ``doc.keep_versions``; returns the text hashes of the
        dropped versions' chunks (for the caller's orphan clean-up). ``metadata``: the
        document's metadata as JSON, when the caller has it already."""
        conn = self._conn
        conn.execute(INSERT_VERSION, version_values(doc_id, version, doc, now, metadata))
        conn.executemany(
            INSERT_VERSION_CHUNK, [(doc_id, version, *row) for row in chunk_rows(doc.chunks)]
        )
        if doc.keep_versions <= 0:
            return []
        return self._drop_versions(doc_id, doc.keep_versions)[1]

    def _drop_versions(self, doc_id: int, keep: int) -> tuple[int, list[str]]:
        """Delete the versions of a document beyond its ``keep`` newest; returns how many,
        and the text hashes their chunks used."""
        versions = [
            v
            for (v,) in self._conn.execute(
                "SELECT version FROM document_versions WHERE document_id = ?", (doc_id,)
            )
        ]
        gone = dropped_versions(versions, keep)
        if not gone:
            return 0, []
        marks = ",".join("?" * len(gone))
        hashes = [
            h
            for (h,) in self._conn.execute(
                f"SELECT text_hash FROM version_chunks WHERE document_id = ? AND version IN ({marks})",
                (doc_id, *gone),
            )
        ]
        self._conn.execute(
            f"DELETE FROM document_versions WHERE document_id = ? AND version IN ({marks})",
            (doc_id, *gone),
        )
        return len(gone), hashes

    def _version_hashes(self, doc_ids: Sequence[int]) -> list[str]:
        """Text hashes of every kept version's chunks of these documents."""
        hashes: list[str] = []
        for part in batches(list(doc_ids)):
            marks = ",".join("?" * len(part))
            hashes.extend(
                h
                for (h,) in self._conn.execute(
                    f"SELECT DISTINCT text_hash FROM version_chunks WHERE document_id IN ({marks})",
                    part,
                )
            )
        return hashes

    def document_version(
        self, collection: Collection, key: str, version: int | None = None
    ) -> StoredVersion:
        with self._snapshot():
            found = self._read(
                "SELECT id, version FROM documents WHERE collection_id = ? AND key = ?",
                (collection.id, key),
            )
            if not found:
                raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
            doc_id, current = found[0]
            wanted = current if version is None else version
            rows = self._read(
                "SELECT version, content_hash, created_at, title, metadata, source, body,"
                " restored_from FROM document_versions WHERE document_id = ? AND version = ?",
                (doc_id, wanted),
            )
            if not rows:
                raise DocumentNotFound(
                    f"document {key!r} has no version {wanted}",
                    hint="list the versions it keeps: engram versions list KEY",
                )
            chunks = self._read(
                "SELECT ordinal, start_char, end_char, page, heading_path, text_hash"
                " FROM version_chunks WHERE document_id = ? AND version = ? ORDER BY ordinal",
                (doc_id, wanted),
            )
        v, content_hash, created_at, title, metadata, source, body, restored_from = rows[0]
        return StoredVersion(
            key=key,
            version=v,
            current=v == current,
            content_hash=content_hash,
            created_at=created_at,
            title=title or "",
            metadata=json.loads(metadata) if metadata else {},
            source=source or "",
            text=unpack_text(body),
            chunks=[version_chunk(r) for r in chunks],
            restored_from=restored_from,
        )

    def document_versions(self, collection: Collection, key: str) -> list[DocumentVersion]:
        with self._snapshot():
            found = self._read(
                "SELECT id, version FROM documents WHERE collection_id = ? AND key = ?",
                (collection.id, key),
            )
            if not found:
                raise DocumentNotFound(f"no document {key!r} in collection {collection.name!r}")
            doc_id, current = found[0]
            rows = self._read(
                "SELECT v.version, v.content_hash, v.chunk_count, v.created_at,"
                " v.body IS NOT NULL OR (v.version = ? AND EXISTS (SELECT 1 FROM version_chunks c"
                " WHERE c.document_id = v.document_id AND c.version = v.version)),"
                " v.restored_from FROM document_versions v WHERE v.document_id = ?"
                " ORDER BY v.version",
                (current, doc_id),
            )
        return [DocumentVersion(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in rows]

    def purge_versions(
        self, collection: Collection, *, keep: int, keys: Sequence[str] | None = None
    ) -> int:
        if keep < 1:
            raise InvalidInput("keep at least 1 version (the current one)")
        with self._transaction() as conn:
            if keys is None:
                doc_ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT d.id FROM documents d WHERE d.collection_id = ? AND"
                        " (SELECT count(*) FROM document_versions v WHERE v.document_id = d.id) > ?",
                        (collection.id, keep),
                    )
                ]
            else:
                doc_ids = []
                for part in batches(list(dict.fromkeys(keys))):
                    marks = ",".join("?" * len(part))
                    doc_ids.extend(
                        r[0]
                        for r in conn.execute(
                            f"SELECT id FROM documents WHERE collection_id = ? AND key IN ({marks})",
                            (collection.id, *part),
                        )
                    )
            dropped = 0
            hashes: list[str] = []
            for doc_id in doc_ids:
                count, used = self._drop_versions(doc_id, keep)
                dropped += count
                hashes.extend(used)
            self._drop_orphan_embeddings(collection.model_id, hashes)
        return dropped
