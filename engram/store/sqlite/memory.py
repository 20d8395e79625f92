"""SQLite implementation of the memory part of the store contract (conversations, memories).

A mixin of :class:`engram.store.sqlite.SQLiteStore`: it shares that store's connection, write
lock and error translation, and lives here so that the document store stays readable.

Retrieval over memories is exact and computed on the fly, with no derived index: a search
reads the vectors (or texts) of that one user's live memories, scores them all with numpy
(cosine) or with a :class:`~engram.search.bm25.BM25Index` built for the query, and returns
the best. Per-user memory sets are small (hundreds, a few thousand), so this costs
milliseconds, is always exactly current, and leaves nothing to keep in sync or to erase.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ... import tracing
from ...errors import ConversationNotFound, InvalidInput, MemoryNotFound
from ...memory.types import (
    Conversation,
    ErasureReport,
    HistoryEvent,
    MemoryEvent,
    MemoryRecord,
    MemoryScope,
    MemoryWrite,
    Message,
    Role,
)
from ...search.bm25 import rank_texts
from .. import rows as shared
from .sql import DECODING, WriteLock, translate

_CONVERSATION_COLS, _MESSAGE_COLS = shared.CONVERSATION_COLS, shared.MESSAGE_COLS
_MEMORY_COLS, _HISTORY_COLS = shared.MEMORY_COLS, shared.HISTORY_COLS


def _now() -> str:
    return shared.monotonic_now().isoformat(timespec="microseconds")


def _conversation(r: Sequence[Any]) -> Conversation:
    return shared.conversation(r, DECODING)


def _message(r: Sequence[Any]) -> Message:
    return shared.message(r, DECODING)


def _memory(r: Sequence[Any]) -> MemoryRecord:
    return shared.memory(r, DECODING)


def _event(r: Sequence[Any]) -> MemoryEvent:
    return shared.memory_event(r, DECODING)


class SQLiteMemoryMixin:
    """Conversations, messages, memories and their history in the store's SQLite file."""

    # Provided by SQLiteStore.
    _conn: sqlite3.Connection
    _write_lock: WriteLock
    path: str

    if TYPE_CHECKING:

        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        def _snapshot(self) -> contextlib.AbstractContextManager[None]: ...

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        with (
            tracing.span("store.transaction", **{"db.system": "sqlite"}),
            translate(),
            self._write_lock,
        ):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- conversations -----------------------------------------------------------------------
    def create_conversation(
        self,
        conversation_id: str,
        *,
        tenant: str,
        user_id: str,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Conversation:
        now, meta = _now(), shared.metadata_json(metadata)
        with self._transaction() as conn:
            conn.execute(
                f"INSERT INTO conversations ({_CONVERSATION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, tenant, user_id, title, meta, now, now),
            )
        return Conversation(conversation_id, tenant, user_id, title, json.loads(meta), now, now)

    def get_conversation(self, conversation_id: str, *, tenant: str) -> Conversation:
        rows = self._read(
            f"SELECT {_CONVERSATION_COLS} FROM conversations WHERE id = ? AND tenant = ?",
            (conversation_id, tenant),
        )
        if not rows:
            raise ConversationNotFound(f"no conversation {conversation_id!r}")
        return _conversation(rows[0])

    def list_conversations(
        self, *, tenant: str, user_id: str, limit: int = 100, offset: int = 0
    ) -> list[Conversation]:
        rows = self._read(
            f"SELECT {_CONVERSATION_COLS} FROM conversations WHERE tenant = ? AND user_id = ?"
            " ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (tenant, user_id, limit, offset),
        )
        return [_conversation(r) for r in rows]

    def delete_conversation(self, conversation_id: str, *, tenant: str) -> None:
        with self._transaction() as conn:
            # Messages go by ON DELETE CASCADE.
            cur = conn.execute(
                "DELETE FROM conversations WHERE id = ? AND tenant = ?", (conversation_id, tenant)
            )
            if cur.rowcount == 0:
                raise ConversationNotFound(f"no conversation {conversation_id!r}")

    def append_messages(
        self,
        conversation_id: str,
        *,
        tenant: str,
        messages: Sequence[tuple[Role, str, dict[str, Any] | None]],
    ) -> list[Message]:
        now = _now()
        written: list[Message] = []
        with self._transaction() as conn:
            cur = conn.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = ? AND tenant = ?",
                (now, conversation_id, tenant),
            )
            if cur.rowcount == 0:
                raise ConversationNotFound(f"no conversation {conversation_id!r}")
            for role, content, metadata in messages:
                meta = shared.metadata_json(metadata)
                message_id = conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, metadata, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (conversation_id, role, content, meta, now),
                ).lastrowid
                assert message_id is not None
                written.append(
                    Message(message_id, conversation_id, role, content, json.loads(meta), now)
                )
        return written

    def list_messages(
        self, conversation_id: str, *, tenant: str, last: int | None = None
    ) -> list[Message]:
        with self._snapshot():
            self.get_conversation(conversation_id, tenant=tenant)
            sql = f"SELECT {_MESSAGE_COLS} FROM messages WHERE conversation_id = ?"
            if last is None:
                rows = self._read(sql + " ORDER BY id", (conversation_id,))
            else:
                rows = self._read(sql + " ORDER BY id DESC LIMIT ?", (conversation_id, last))
                rows.reverse()
        return [_message(r) for r in rows]

    # -- memories ----------------------------------------------------------------------------
    @staticmethod
    def _history(
        conn: sqlite3.Connection,
        memory_id: str,
        event: HistoryEvent,
        old: str | None,
        new: str | None,
        now: str,
    ) -> None:
        conn.execute(
            "INSERT INTO memory_history (memory_id, event, old_content, new_content, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (memory_id, event, old, new, now),
        )

    def add_memory(self, memory_id: str, scope: MemoryScope, write: MemoryWrite) -> MemoryRecord:
        now, meta, blob = (
            _now(),
            shared.metadata_json(write.metadata),
            shared.memory_embedding(write).tobytes(),
        )
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO memories (id, tenant, user_id, agent_id, content, metadata,"
                " content_hash, embedding, model_id, source, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    memory_id,
                    scope.tenant,
                    scope.user_id,
                    scope.agent_id,
                    write.content,
                    meta,
                    write.content_hash,
                    blob,
                    write.model_id,
                    write.source,
                    now,
                    now,
                ),
            )
            self._history(conn, memory_id, "add", None, write.content, now)
        return self.get_memory(memory_id, tenant=scope.tenant)

    def get_memory(
        self, memory_id: str, *, tenant: str, include_deleted: bool = False
    ) -> MemoryRecord:
        live = "" if include_deleted else " AND deleted_at IS NULL"
        rows = self._read(
            f"SELECT {_MEMORY_COLS} FROM memories WHERE id = ? AND tenant = ?{live}",
            (memory_id, tenant),
        )
        if not rows:
            raise MemoryNotFound(f"no memory {memory_id!r}")
        return _memory(rows[0])

    def get_memories(self, ids: Sequence[str], *, tenant: str) -> dict[str, MemoryRecord]:
        out: dict[str, MemoryRecord] = {}
        ids = list(dict.fromkeys(ids))
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            rows = self._read(
                f"SELECT {_MEMORY_COLS} FROM memories WHERE tenant = ? AND deleted_at IS NULL"
                f" AND id IN ({','.join('?' * len(part))})",
                (tenant, *part),
            )
            out.update((r[0], _memory(r)) for r in rows)
        return out

    def list_memories(
        self,
        scope: MemoryScope,
        *,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[MemoryRecord]:
        cond, params = shared.scope_condition(scope, "?")
        if not include_deleted:
            cond += " AND deleted_at IS NULL"
        rows = self._read(
            f"SELECT {_MEMORY_COLS} FROM memories WHERE {cond}"
            " ORDER BY updated_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return [_memory(r) for r in rows]

    def update_memory(
        self,
        memory_id: str,
        *,
        tenant: str,
        write: MemoryWrite,
        event: HistoryEvent = "update",
    ) -> MemoryRecord:
        now, meta, blob = (
            _now(),
            shared.metadata_json(write.metadata),
            shared.memory_embedding(write).tobytes(),
        )
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT content FROM memories WHERE id = ? AND tenant = ? AND deleted_at IS NULL",
                (memory_id, tenant),
            ).fetchone()
            if row is None:
                raise MemoryNotFound(f"no memory {memory_id!r}")
            conn.execute(
                "UPDATE memories SET content = ?, metadata = ?, content_hash = ?, embedding = ?,"
                " model_id = ?, source = ?, updated_at = ? WHERE id = ?",
                (
                    write.content,
                    meta,
                    write.content_hash,
                    blob,
                    write.model_id,
                    write.source,
                    now,
                    memory_id,
                ),
            )
            self._history(conn, memory_id, event, row[0], write.content, now)
        return self.get_memory(memory_id, tenant=tenant)

    def delete_memory(self, memory_id: str, *, tenant: str) -> MemoryRecord:
        now = _now()
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT content FROM memories WHERE id = ? AND tenant = ? AND deleted_at IS NULL",
                (memory_id, tenant),
            ).fetchone()
            if row is None:
                raise MemoryNotFound(f"no memory {memory_id!r}")
            conn.execute(
                "UPDATE memories SET deleted_at = ?, updated_at = ? WHERE id = ?",
                (now, now, memory_id),
            )
            self._history(conn, memory_id, "delete", row[0], None, now)
        return self.get_memory(memory_id, tenant=tenant, include_deleted=True)

    def memory_history(self, memory_id: str, *, tenant: str) -> list[MemoryEvent]:
        with self._snapshot():
            self.get_memory(memory_id, tenant=tenant, include_deleted=True)
            rows = self._read(
                f"SELECT {_HISTORY_COLS} FROM memory_history WHERE memory_id = ? ORDER BY id",
                (memory_id,),
            )
        return [_event(r) for r in rows]

    def find_memory_by_hash(self, scope: MemoryScope, content_hash: str) -> MemoryRecord | None:
        cond, params = shared.scope_condition(scope, "?")
        rows = self._read(
            f"SELECT {_MEMORY_COLS} FROM memories WHERE {cond} AND deleted_at IS NULL"
            " AND content_hash = ? ORDER BY created_at, rowid LIMIT 1",
            (*params, content_hash),
        )
        return _memory(rows[0]) if rows else None

    # -- retrieval: exact, over one user's live memories --------------------------------------
    def memory_vector_candidates(
        self, scope: MemoryScope, vector: np.ndarray, *, model_id: str, k: int
    ) -> list[tuple[str, float]]:
        cond, params = shared.scope_condition(scope, "?")
        found = self._read(
            f"SELECT id, embedding, model_id FROM memories WHERE {cond} AND deleted_at IS NULL",
            params,
        )
        shared.refuse_other_models(scope, [m for _, _, m in found], model_id)
        if not found or k <= 0:
            return []
        query = np.asarray(vector, dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[1] for r in found), dtype=np.float32)
        if query.ndim != 1 or matrix.size != len(found) * len(query):
            raise InvalidInput(f"query vector of shape {query.shape} does not match the memories")
        matrix = matrix.reshape(len(found), len(query))
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
        sims = (matrix @ query) / np.where(norms > 0, norms, 1.0)
        # Best first; ties by id so rankings are deterministic.
        ranked = sorted(range(len(found)), key=lambda i: (-float(sims[i]), found[i][0]))[:k]
        return [(found[i][0], float(sims[i])) for i in ranked]

    def memory_keyword_candidates(
        self, scope: MemoryScope, terms: Sequence[str], *, language: str, k: int
    ) -> list[tuple[str, float]]:
        if not terms or k <= 0:
            return []
        cond, params = shared.scope_condition(scope, "?")
        texts = self._read(
            f"SELECT id, content FROM memories WHERE {cond} AND deleted_at IS NULL", params
        )
        return rank_texts(texts, terms, language=language, k=k)

    # -- whole users -------------------------------------------------------------------------
    _USER_CONVERSATIONS = "SELECT id FROM conversations WHERE tenant = ? AND user_id = ?"
    _USER_MEMORIES = "SELECT id FROM memories WHERE tenant = ? AND user_id = ?"

    def erase_user(self, *, tenant: str, user_id: str) -> ErasureReport:
        owner = (tenant, user_id)
        # secure_delete overwrites the freed bytes, so the erased text does not linger in
        # free pages of the file; the checkpoint then drops older page images from the WAL.
        with translate(), self._write_lock:
            self._conn.execute("PRAGMA secure_delete = ON")
        try:
            with self._transaction() as conn:
                messages = conn.execute(
                    f"DELETE FROM messages WHERE conversation_id IN ({self._USER_CONVERSATIONS})",
                    owner,
                ).rowcount
                conversations = conn.execute(
                    "DELETE FROM conversations WHERE tenant = ? AND user_id = ?", owner
                ).rowcount
                history = conn.execute(
                    f"DELETE FROM memory_history WHERE memory_id IN ({self._USER_MEMORIES})",
                    owner,
                ).rowcount
                memories = conn.execute(
                    "DELETE FROM memories WHERE tenant = ? AND user_id = ?", owner
                ).rowcount
                # Analytics events carry the user's questions: they go too.
                conn.execute("DELETE FROM events WHERE tenant = ? AND user_id = ?", owner)
        finally:
            with translate(), self._write_lock:
                self._conn.execute("PRAGMA secure_delete = OFF")
                if self.path != ":memory:":
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return ErasureReport(conversations, messages, memories, history)

    def export_user(self, *, tenant: str, user_id: str) -> dict[str, Any]:
        owner = (tenant, user_id)
        with self._snapshot():
            conversations = self._read(
                f"SELECT {_CONVERSATION_COLS} FROM conversations WHERE tenant = ? AND user_id = ?"
                " ORDER BY created_at, rowid",
                owner,
            )
            messages = self._read(
                f"SELECT {_MESSAGE_COLS} FROM messages"
                f" WHERE conversation_id IN ({self._USER_CONVERSATIONS}) ORDER BY id",
                owner,
            )
            memories = self._read(
                f"SELECT {_MEMORY_COLS} FROM memories WHERE tenant = ? AND user_id = ?"
                " ORDER BY created_at, rowid",
                owner,
            )
            history = self._read(
                f"SELECT {_HISTORY_COLS} FROM memory_history"
                f" WHERE memory_id IN ({self._USER_MEMORIES}) ORDER BY id",
                owner,
            )
        return shared.user_export(
            tenant,
            user_id,
            _now(),
            [_conversation(r) for r in conversations],
            [_message(r) for r in messages],
            [_memory(r) for r in memories],
            [_event(r) for r in history],
        )
