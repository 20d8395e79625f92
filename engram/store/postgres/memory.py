"""PostgreSQL implementation of the memory part of the store contract (conversations,
messages, memories and their history, whole-user erasure and export).

A mixin of :class:`engram.store.postgres.PostgresStore`: every statement runs in the store's
tenant-scoped transactions (:meth:`~engram.store.postgres.connection.PostgresBase._tx`), so the
row-level-security policies apply on top of the explicit ``tenant = ...`` conditions.

It mirrors :mod:`engram.store.sqlite.memory` result for result: the same timestamps
(microseconds, strictly increasing within a process), the same orderings (``seq`` stands in
for SQLite's rowid), the same errors. Retrieval is exact over one user's live memories, as
there: cosine by pgvector's ``<=>`` over the user's rows (no ANN index: per-user sets are
small), and BM25 by the same in-memory :class:`~engram.search.bm25.BM25Index` built for the
query from the memories' analyzed content, so both backends score identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

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
from .connection import DECODING, PostgresBase, iso, vector_text

if TYPE_CHECKING:
    import psycopg

_CONVERSATION_COLS, _MESSAGE_COLS = shared.CONVERSATION_COLS, shared.MESSAGE_COLS
_MEMORY_COLS, _HISTORY_COLS = shared.MEMORY_COLS, shared.HISTORY_COLS


def _conversation(r: dict[str, Any]) -> Conversation:
    return shared.conversation(list(r.values()), DECODING)


def _message(r: dict[str, Any]) -> Message:
    return shared.message(list(r.values()), DECODING)


def _memory(r: dict[str, Any]) -> MemoryRecord:
    return shared.memory(list(r.values()), DECODING)


def _event(r: dict[str, Any]) -> MemoryEvent:
    return shared.memory_event(list(r.values()), DECODING)


def _vector(write: MemoryWrite) -> str:
    return vector_text(shared.memory_embedding(write))


class PostgresMemoryMixin(PostgresBase):
    """Conversations, messages, memories and their history in PostgreSQL."""

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
        now, meta = shared.monotonic_now(), shared.metadata_json(metadata)
        with self._tx(tenant) as cur:
            cur.execute(
                "INSERT INTO conversations (id, tenant, user_id, title, metadata, created_at,"
                f" updated_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)"
                f" RETURNING {_CONVERSATION_COLS}",
                (conversation_id, tenant, user_id, title, meta, now, now),
            )
            row = cur.fetchone()
        assert row is not None
        return _conversation(row)

    def get_conversation(self, conversation_id: str, *, tenant: str) -> Conversation:
        with self._tx(tenant) as cur:
            return self._get_conversation(cur, conversation_id, tenant)

    @staticmethod
    def _get_conversation(
        cur: psycopg.Cursor[dict[str, Any]], conversation_id: str, tenant: str
    ) -> Conversation:
        cur.execute(
            f"SELECT {_CONVERSATION_COLS} FROM conversations WHERE id = %s AND tenant = %s",
            (conversation_id, tenant),
        )
        row = cur.fetchone()
        if row is None:
            raise ConversationNotFound(f"no conversation {conversation_id!r}")
        return _conversation(row)

    def list_conversations(
        self, *, tenant: str, user_id: str, limit: int = 100, offset: int = 0
    ) -> list[Conversation]:
        with self._tx(tenant) as cur:
            cur.execute(
                f"SELECT {_CONVERSATION_COLS} FROM conversations"
                " WHERE tenant = %s AND user_id = %s"
                " ORDER BY updated_at DESC, seq DESC LIMIT %s OFFSET %s",
                (tenant, user_id, _limit(limit), _offset(offset)),
            )
            return [_conversation(r) for r in cur.fetchall()]

    def delete_conversation(self, conversation_id: str, *, tenant: str) -> None:
        with self._tx(tenant) as cur:
            # Messages go by ON DELETE CASCADE.
            cur.execute(
                "DELETE FROM conversations WHERE id = %s AND tenant = %s",
                (conversation_id, tenant),
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
        written: list[Message] = []
        with self._tx(tenant) as cur:
            # The UPDATE locks the conversation row: concurrent appends to one conversation
            # are serialised, so message ids and timestamps grow in the order of appends.
            now = shared.monotonic_now()
            cur.execute(
                "UPDATE conversations SET updated_at = %s WHERE id = %s AND tenant = %s",
                (now, conversation_id, tenant),
            )
            if cur.rowcount == 0:
                raise ConversationNotFound(f"no conversation {conversation_id!r}")
            for role, content, metadata in messages:
                cur.execute(
                    "INSERT INTO messages (tenant, conversation_id, role, content, metadata,"
                    " created_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s)"
                    f" RETURNING {_MESSAGE_COLS}",
                    (tenant, conversation_id, role, content, shared.metadata_json(metadata), now),
                )
                row = cur.fetchone()
                assert row is not None
                written.append(_message(row))
        return written

    def list_messages(
        self, conversation_id: str, *, tenant: str, last: int | None = None
    ) -> list[Message]:
        with self._tx(tenant, snapshot=True) as cur:
            self._get_conversation(cur, conversation_id, tenant)
            sql = f"SELECT {_MESSAGE_COLS} FROM messages WHERE conversation_id = %s"
            if last is None:
                cur.execute(sql + " ORDER BY id", (conversation_id,))
                rows = cur.fetchall()
            else:
                cur.execute(sql + " ORDER BY id DESC LIMIT %s", (conversation_id, _limit(last)))
                rows = cur.fetchall()
                rows.reverse()
        return [_message(r) for r in rows]

    # -- memories ----------------------------------------------------------------------------
    @staticmethod
    def _history(
        cur: psycopg.Cursor[dict[str, Any]],
        tenant: str,
        memory_id: str,
        event: HistoryEvent,
        old: str | None,
        new: str | None,
        now: datetime,
    ) -> None:
        cur.execute(
            "INSERT INTO memory_history (tenant, memory_id, event, old_content, new_content,"
            " created_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (tenant, memory_id, event, old, new, now),
        )

    def add_memory(self, memory_id: str, scope: MemoryScope, write: MemoryWrite) -> MemoryRecord:
        meta, vec = shared.metadata_json(write.metadata), _vector(write)
        with self._tx(scope.tenant) as cur:
            now = shared.monotonic_now()
            cur.execute(
                "INSERT INTO memories (id, tenant, user_id, agent_id, content, metadata,"
                " content_hash, embedding, model_id, source, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s::vector, %s, %s, %s, %s)"
                f" RETURNING {_MEMORY_COLS}",
                (
                    memory_id,
                    scope.tenant,
                    scope.user_id,
                    scope.agent_id,
                    write.content,
                    meta,
                    write.content_hash,
                    vec,
                    write.model_id,
                    write.source,
                    now,
                    now,
                ),
            )
            row = cur.fetchone()
            self._history(cur, scope.tenant, memory_id, "add", None, write.content, now)
        assert row is not None
        return _memory(row)

    def get_memory(
        self, memory_id: str, *, tenant: str, include_deleted: bool = False
    ) -> MemoryRecord:
        with self._tx(tenant) as cur:
            return self._get_memory(cur, memory_id, tenant, include_deleted)

    @staticmethod
    def _get_memory(
        cur: psycopg.Cursor[dict[str, Any]], memory_id: str, tenant: str, include_deleted: bool
    ) -> MemoryRecord:
        live = "" if include_deleted else " AND deleted_at IS NULL"
        cur.execute(
            f"SELECT {_MEMORY_COLS} FROM memories WHERE id = %s AND tenant = %s{live}",
            (memory_id, tenant),
        )
        row = cur.fetchone()
        if row is None:
            raise MemoryNotFound(f"no memory {memory_id!r}")
        return _memory(row)

    def get_memories(self, ids: Sequence[str], *, tenant: str) -> dict[str, MemoryRecord]:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        with self._tx(tenant) as cur:
            cur.execute(
                f"SELECT {_MEMORY_COLS} FROM memories WHERE tenant = %s AND deleted_at IS NULL"
                " AND id = ANY(%s)",
                (tenant, ids),
            )
            rows = cur.fetchall()
        # In the order asked for, as the SQLite backend returns them (batch by batch).
        found = {r["id"]: _memory(r) for r in rows}
        return {i: found[i] for i in ids if i in found}

    def list_memories(
        self,
        scope: MemoryScope,
        *,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[MemoryRecord]:
        cond, params = shared.scope_condition(scope, "%s")
        if not include_deleted:
            cond += " AND deleted_at IS NULL"
        with self._tx(scope.tenant) as cur:
            cur.execute(
                f"SELECT {_MEMORY_COLS} FROM memories WHERE {cond}"
                " ORDER BY updated_at DESC, seq DESC LIMIT %s OFFSET %s",
                (*params, _limit(limit), _offset(offset)),
            )
            return [_memory(r) for r in cur.fetchall()]

    def update_memory(
        self,
        memory_id: str,
        *,
        tenant: str,
        write: MemoryWrite,
        event: HistoryEvent = "update",
    ) -> MemoryRecord:
        meta, vec = shared.metadata_json(write.metadata), _vector(write)
        with self._tx(tenant) as cur:
            # FOR UPDATE: a concurrent update waits, so each history row has the right
            # old content (the SQLite backend gets this from its single writer).
            cur.execute(
                "SELECT content FROM memories WHERE id = %s AND tenant = %s"
                " AND deleted_at IS NULL FOR UPDATE",
                (memory_id, tenant),
            )
            old = cur.fetchone()
            if old is None:
                raise MemoryNotFound(f"no memory {memory_id!r}")
            now = shared.monotonic_now()
            cur.execute(
                "UPDATE memories SET content = %s, metadata = %s::jsonb, content_hash = %s,"
                " embedding = %s::vector, model_id = %s, source = %s, updated_at = %s"
                f" WHERE id = %s RETURNING {_MEMORY_COLS}",
                (
                    write.content,
                    meta,
                    write.content_hash,
                    vec,
                    write.model_id,
                    write.source,
                    now,
                    memory_id,
                ),
            )
            row = cur.fetchone()
            self._history(cur, tenant, memory_id, event, old["content"], write.content, now)
        assert row is not None
        return _memory(row)

    def delete_memory(self, memory_id: str, *, tenant: str) -> MemoryRecord:
        with self._tx(tenant) as cur:
            cur.execute(
                "SELECT content FROM memories WHERE id = %s AND tenant = %s"
                " AND deleted_at IS NULL FOR UPDATE",
                (memory_id, tenant),
            )
            old = cur.fetchone()
            if old is None:
                raise MemoryNotFound(f"no memory {memory_id!r}")
            now = shared.monotonic_now()
            cur.execute(
                "UPDATE memories SET deleted_at = %s, updated_at = %s WHERE id = %s"
                f" RETURNING {_MEMORY_COLS}",
                (now, now, memory_id),
            )
            row = cur.fetchone()
            self._history(cur, tenant, memory_id, "delete", old["content"], None, now)
        assert row is not None
        return _memory(row)

    def memory_history(self, memory_id: str, *, tenant: str) -> list[MemoryEvent]:
        with self._tx(tenant, snapshot=True) as cur:
            self._get_memory(cur, memory_id, tenant, True)
            cur.execute(
                f"SELECT {_HISTORY_COLS} FROM memory_history WHERE memory_id = %s ORDER BY id",
                (memory_id,),
            )
            return [_event(r) for r in cur.fetchall()]

    def find_memory_by_hash(self, scope: MemoryScope, content_hash: str) -> MemoryRecord | None:
        cond, params = shared.scope_condition(scope, "%s")
        with self._tx(scope.tenant) as cur:
            cur.execute(
                f"SELECT {_MEMORY_COLS} FROM memories WHERE {cond} AND deleted_at IS NULL"
                " AND content_hash = %s ORDER BY created_at, seq LIMIT 1",
                (*params, content_hash),
            )
            row = cur.fetchone()
        return _memory(row) if row else None

    # -- retrieval: exact, over one user's live memories --------------------------------------
    def memory_vector_candidates(
        self, scope: MemoryScope, vector: np.ndarray, *, model_id: str, k: int
    ) -> list[tuple[str, float]]:
        cond, params = shared.scope_condition(scope, "%s")
        query = np.asarray(vector, dtype=np.float32)
        with self._tx(scope.tenant) as cur:
            cur.execute(
                "SELECT model_id, vector_dims(embedding) AS dim FROM memories"
                f" WHERE {cond} AND deleted_at IS NULL GROUP BY 1, 2",
                params,
            )
            kinds = cur.fetchall()
            shared.refuse_other_models(scope, [r["model_id"] for r in kinds], model_id)
            if not kinds or k <= 0:
                return []
            if query.ndim != 1 or any(r["dim"] != len(query) for r in kinds):
                raise InvalidInput(
                    f"query vector of shape {query.shape} does not match the memories"
                )
            if not np.all(np.isfinite(query)):
                raise InvalidInput("the query vector must contain finite numbers only")
            # pgvector's cosine distance is NaN when a vector is zero; the SQLite backend
            # scores those 0. Ties by id (byte order, like Python's) for determinism.
            cur.execute(
                "SELECT id, CASE WHEN d = 'NaN'::float8 THEN 0 ELSE 1 - d END AS sim"
                " FROM (SELECT id, embedding <=> %s::vector AS d FROM memories"
                f" WHERE {cond} AND deleted_at IS NULL) AS scored"
                ' ORDER BY sim DESC, id COLLATE "C" LIMIT %s',
                (vector_text(query), *params, k),
            )
            return [(r["id"], float(r["sim"])) for r in cur.fetchall()]

    def memory_keyword_candidates(
        self, scope: MemoryScope, terms: Sequence[str], *, language: str, k: int
    ) -> list[tuple[str, float]]:
        if not terms or k <= 0:
            return []
        cond, params = shared.scope_condition(scope, "%s")
        with self._tx(scope.tenant) as cur:
            # Insertion order, as SQLite's rowid order: BM25 ties break by position.
            cur.execute(
                f"SELECT id, content FROM memories WHERE {cond} AND deleted_at IS NULL"
                " ORDER BY seq",
                params,
            )
            rows = cur.fetchall()
        texts = [(row["id"], row["content"]) for row in rows]
        return rank_texts(texts, terms, language=language, k=k)

    # -- whole users -------------------------------------------------------------------------
    _USER_CONVERSATIONS = "SELECT id FROM conversations WHERE tenant = %s AND user_id = %s"
    _USER_MEMORIES = "SELECT id FROM memories WHERE tenant = %s AND user_id = %s"

    def erase_user(self, *, tenant: str, user_id: str) -> ErasureReport:
        # Deleted rows are gone for every query at commit; their bytes stay in the table
        # files until autovacuum reclaims the space (PostgreSQL has no secure_delete).
        owner = (tenant, user_id)
        with self._tx(tenant) as cur:
            cur.execute(
                f"DELETE FROM messages WHERE conversation_id IN ({self._USER_CONVERSATIONS})",
                owner,
            )
            messages = cur.rowcount
            cur.execute("DELETE FROM conversations WHERE tenant = %s AND user_id = %s", owner)
            conversations = cur.rowcount
            cur.execute(
                f"DELETE FROM memory_history WHERE memory_id IN ({self._USER_MEMORIES})", owner
            )
            history = cur.rowcount
            cur.execute("DELETE FROM memories WHERE tenant = %s AND user_id = %s", owner)
            memories = cur.rowcount
            # Analytics events carry the user's questions: they go too.
            cur.execute("DELETE FROM events WHERE tenant = %s AND user_id = %s", owner)
        return ErasureReport(conversations, messages, memories, history)

    def export_user(self, *, tenant: str, user_id: str) -> dict[str, Any]:
        owner = (tenant, user_id)
        with self._tx(tenant, snapshot=True) as cur:
            cur.execute(
                f"SELECT {_CONVERSATION_COLS} FROM conversations"
                " WHERE tenant = %s AND user_id = %s ORDER BY created_at, seq",
                owner,
            )
            conversations = cur.fetchall()
            cur.execute(
                f"SELECT {_MESSAGE_COLS} FROM messages"
                f" WHERE conversation_id IN ({self._USER_CONVERSATIONS}) ORDER BY id",
                owner,
            )
            messages = cur.fetchall()
            cur.execute(
                f"SELECT {_MEMORY_COLS} FROM memories WHERE tenant = %s AND user_id = %s"
                " ORDER BY created_at, seq",
                owner,
            )
            memories = cur.fetchall()
            cur.execute(
                f"SELECT {_HISTORY_COLS} FROM memory_history"
                f" WHERE memory_id IN ({self._USER_MEMORIES}) ORDER BY id",
                owner,
            )
            history = cur.fetchall()
        return shared.user_export(
            tenant,
            user_id,
            shared.required(iso(shared.monotonic_now())),
            [_conversation(r) for r in conversations],
            [_message(r) for r in messages],
            [_memory(r) for r in memories],
            [_event(r) for r in history],
        )


def _limit(value: int) -> int | None:
    """SQLite reads a negative LIMIT as "no limit"; PostgreSQL refuses it: None (ALL)."""
    return None if value < 0 else value


def _offset(value: int) -> int:
    """SQLite reads a negative OFFSET as 0; PostgreSQL refuses it."""
    return max(value, 0)
