"""The memory part of the store contract (conversations, messages, memories and their
history, whole-user erasure and export), written once for both backends over a
:class:`~engram.store.session.Session` and a :class:`~engram.store.session.Dialect`.

Both backends therefore return the same records in the same orders with the same errors:
timestamps in microseconds, strictly increasing within a process
(:func:`~engram.store.rows.monotonic_now`); conversations and memories newest first, ties by
insertion order; messages and history by id. What a backend keeps to itself is the vector
search over a user's memories (numpy on SQLite, pgvector on PostgreSQL) and what erasure
must do to the files (:meth:`MemoryTables._erasing`).

Retrieval over memories is exact and computed on the fly, with no derived index: a search
reads that one user's live memories and scores them all. Per-user memory sets are small
(hundreds, a few thousand), so this costs milliseconds, is always exactly current, and leaves
nothing to keep in sync or to erase. Keyword candidates are ranked by the same in-memory
BM25 on both backends (:func:`~engram.search.bm25.rank_texts`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import CollectionNotFound, Conflict, ConversationNotFound, MemoryNotFound
from ..memory.types import (
    Conversation,
    ErasureReport,
    HistoryEvent,
    MemoryEvent,
    MemoryRecord,
    MemoryScope,
    MemoryWrite,
    Message,
    MessageWrite,
    recall_collection,
)
from ..search.bm25 import rank_texts
from ..state.types import user_home
from . import rows as shared
from .analytics_tables import erase_outbox
from .checkpoint_tables import erase_user_checkpoints
from .contract import MemoryStore
from .message_index import MessageIndexTables
from .records import ConversationDump, MemoryDump, OnConflict
from .rows import CONVERSATION_COLS, HISTORY_COLS, MEMORY_COLS, MESSAGE_COLS
from .session import Session
from .state_tables import namespace_prefix, user_state

_USER_CONVERSATIONS = "SELECT id FROM conversations WHERE tenant = ? AND user_id = ?"
_USER_MEMORIES = "SELECT id FROM memories WHERE tenant = ? AND user_id = ?"
_LIVE_CONTENT = "SELECT content FROM memories WHERE id = ? AND tenant = ? AND deleted_at IS NULL"


class MemoryTables(MessageIndexTables, MemoryStore):
    """Conversations, messages, memories and their history in a backend's tables."""

    if TYPE_CHECKING:  # provided by the backend's store

        def delete_collection(self, name: str, *, tenant: str = "default") -> None: ...

    @contextlib.contextmanager
    def _erasing(self) -> Iterator[None]:
        """Around a user's erasure: what the backend does so that erased text does not
        linger in its files (SQLite: secure_delete, then a WAL checkpoint)."""
        yield

    def _child_owner(self, tenant: str) -> tuple[tuple[str, ...], tuple[str, str]]:
        """The tenant value, column and placeholder for a child row (message, history): on
        PostgreSQL children carry their tenant (row-level security); on SQLite they take it
        from their parent."""
        if self.dialect.tenant_on_children:
            return (tenant,), ("tenant, ", "?, ")
        return (), ("", "")

    # -- rows to records ---------------------------------------------------------------------
    def _conversation(self, r: Sequence[Any]) -> Conversation:
        return shared.conversation(r, self.dialect.decoding)

    def _memory(self, r: Sequence[Any]) -> MemoryRecord:
        return shared.memory(r, self.dialect.decoding)

    def _event(self, r: Sequence[Any]) -> MemoryEvent:
        return shared.memory_event(r, self.dialect.decoding)

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
        d = self.dialect
        meta, now = shared.metadata_json(metadata), d.time_value(shared.monotonic_now())
        with self._session(tenant, write=True) as s:
            row = s.row(
                f"INSERT INTO conversations ({CONVERSATION_COLS})"
                f" VALUES (?, ?, ?, ?, {d.json_mark}, ?, ?) RETURNING {CONVERSATION_COLS}",
                (conversation_id, tenant, user_id, title, meta, now, now),
            )
        return self._conversation(shared.required_row(row))

    def get_conversation(self, conversation_id: str, *, tenant: str) -> Conversation:
        with self._session(tenant) as s:
            return self._get_conversation(s, conversation_id, tenant)

    def _get_conversation(self, s: Session, conversation_id: str, tenant: str) -> Conversation:
        row = s.row(
            f"SELECT {CONVERSATION_COLS} FROM conversations WHERE id = ? AND tenant = ?",
            (conversation_id, tenant),
        )
        if row is None:
            raise ConversationNotFound(f"no conversation {conversation_id!r}")
        return self._conversation(row)

    def list_conversations(
        self, *, tenant: str, user_id: str, limit: int = 100, offset: int = 0
    ) -> list[Conversation]:
        d = self.dialect
        with self._session(tenant) as s:
            found = s.rows(
                f"SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant = ? AND user_id = ?"
                f" ORDER BY updated_at DESC, {d.insertion_order} DESC LIMIT ? OFFSET ?",
                (tenant, user_id, d.limit(limit), d.offset(offset)),
            )
        return [self._conversation(r) for r in found]

    def delete_conversation(self, conversation_id: str, *, tenant: str) -> None:
        with self._session(tenant, write=True) as s:
            # Messages go by ON DELETE CASCADE.
            if not s.run(
                "DELETE FROM conversations WHERE id = ? AND tenant = ?", (conversation_id, tenant)
            ):
                raise ConversationNotFound(f"no conversation {conversation_id!r}")

    def append_messages(
        self, conversation_id: str, *, tenant: str, messages: Sequence[MessageWrite]
    ) -> list[Message]:
        d = self.dialect
        owner, (owner_col, owner_mark) = self._child_owner(tenant)
        written: list[Message] = []
        with self._session(tenant, write=True) as s:
            # The UPDATE takes the conversation's row (PostgreSQL: its lock): concurrent
            # appends to one conversation are serialised, so message ids and timestamps grow
            # in the order of appends.
            now = d.time_value(shared.monotonic_now())
            if not s.run(
                "UPDATE conversations SET updated_at = ? WHERE id = ? AND tenant = ?",
                (now, conversation_id, tenant),
            ):
                raise ConversationNotFound(f"no conversation {conversation_id!r}")
            for m in messages:
                said = now if m.created_at is None else d.time_value(m.created_at)
                row = s.row(
                    f"INSERT INTO messages ({owner_col}conversation_id, role, content,"
                    f" metadata, created_at, speaker)"
                    f" VALUES ({owner_mark}?, ?, ?, {d.json_mark}, ?, ?)"
                    f" RETURNING {MESSAGE_COLS}",
                    (
                        *owner,
                        conversation_id,
                        m.role,
                        m.content,
                        shared.metadata_json(m.metadata),
                        said,
                        m.speaker,
                    ),
                )
                written.append(self._message(shared.required_row(row)))
        return written

    def list_messages(
        self, conversation_id: str, *, tenant: str, last: int | None = None
    ) -> list[Message]:
        with self._session(tenant, snapshot=True) as s:
            self._get_conversation(s, conversation_id, tenant)
            sql = f"SELECT {MESSAGE_COLS} FROM messages WHERE conversation_id = ?"
            if last is None:
                found = s.rows(sql + " ORDER BY id", (conversation_id,))
            else:
                found = s.rows(
                    sql + " ORDER BY id DESC LIMIT ?", (conversation_id, self.dialect.limit(last))
                )
                found.reverse()
        return [self._message(r) for r in found]

    # -- memories ----------------------------------------------------------------------------
    def _history(
        self,
        s: Session,
        tenant: str,
        memory_id: str,
        event: HistoryEvent,
        old: str | None,
        new: str | None,
        now: Any,
        source: str | None,
    ) -> None:
        owner, (owner_col, owner_mark) = self._child_owner(tenant)
        s.run(
            f"INSERT INTO memory_history ({owner_col}memory_id, event, old_content, new_content,"
            f" created_at, source) VALUES ({owner_mark}?, ?, ?, ?, ?, ?)",
            (*owner, memory_id, event, old, new, now, source),
        )

    def add_memory(self, memory_id: str, scope: MemoryScope, write: MemoryWrite) -> MemoryRecord:
        d = self.dialect
        meta, vec = shared.metadata_json(write.metadata), shared.memory_embedding(write)
        with self._session(scope.tenant, write=True) as s:
            now = d.time_value(shared.monotonic_now())
            row = s.row(
                "INSERT INTO memories (id, tenant, user_id, agent_id, content, metadata,"
                " content_hash, embedding, model_id, source, created_at, updated_at)"
                f" VALUES (?, ?, ?, ?, ?, {d.json_mark}, ?, {d.vector_mark}, ?, ?, ?, ?)"
                f" RETURNING {MEMORY_COLS}",
                (
                    memory_id,
                    scope.tenant,
                    scope.user_id,
                    scope.agent_id,
                    write.content,
                    meta,
                    write.content_hash,
                    d.vector_value(vec),
                    write.model_id,
                    write.source,
                    now,
                    now,
                ),
            )
            self._history(s, scope.tenant, memory_id, "add", None, write.content, now, write.source)
        return self._memory(shared.required_row(row))

    def get_memory(
        self, memory_id: str, *, tenant: str, include_deleted: bool = False
    ) -> MemoryRecord:
        with self._session(tenant) as s:
            return self._get_memory(s, memory_id, tenant, include_deleted)

    def _get_memory(
        self, s: Session, memory_id: str, tenant: str, include_deleted: bool
    ) -> MemoryRecord:
        live = "" if include_deleted else " AND deleted_at IS NULL"
        row = s.row(
            f"SELECT {MEMORY_COLS} FROM memories WHERE id = ? AND tenant = ?{live}",
            (memory_id, tenant),
        )
        if row is None:
            raise MemoryNotFound(f"no memory {memory_id!r}")
        return self._memory(row)

    def get_memories(self, ids: Sequence[str], *, tenant: str) -> dict[str, MemoryRecord]:
        ids = list(dict.fromkeys(ids))
        found: dict[str, MemoryRecord] = {}
        with self._session(tenant, snapshot=len(ids) > shared.ID_BATCH) as s:
            for i in range(0, len(ids), shared.ID_BATCH):
                part = ids[i : i + shared.ID_BATCH]
                for r in s.rows(
                    f"SELECT {MEMORY_COLS} FROM memories WHERE tenant = ?"
                    f" AND deleted_at IS NULL AND id IN ({','.join('?' * len(part))})",
                    (tenant, *part),
                ):
                    found[r[0]] = self._memory(r)
        return {i: found[i] for i in ids if i in found}  # in the order asked for

    def list_memories(
        self,
        scope: MemoryScope,
        *,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
    ) -> list[MemoryRecord]:
        d = self.dialect
        cond, params = shared.scope_condition(scope, "?")
        if not include_deleted:
            cond += " AND deleted_at IS NULL"
        with self._session(scope.tenant) as s:
            found = s.rows(
                f"SELECT {MEMORY_COLS} FROM memories WHERE {cond}"
                f" ORDER BY updated_at DESC, {d.insertion_order} DESC LIMIT ? OFFSET ?",
                (*params, d.limit(limit), d.offset(offset)),
            )
        return [self._memory(r) for r in found]

    def update_memory(
        self,
        memory_id: str,
        *,
        tenant: str,
        write: MemoryWrite,
        event: HistoryEvent = "update",
        source: str | None = None,
    ) -> MemoryRecord:
        d = self.dialect
        meta, vec = shared.metadata_json(write.metadata), shared.memory_embedding(write)
        with self._session(tenant, write=True) as s:
            # The old content is read with the row locked, so each history row has the
            # right one even when updates race.
            old = s.row(_LIVE_CONTENT + d.lock_rows, (memory_id, tenant))
            if old is None:
                raise MemoryNotFound(f"no memory {memory_id!r}")
            now = d.time_value(shared.monotonic_now())
            row = s.row(
                f"UPDATE memories SET content = ?, metadata = {d.json_mark}, content_hash = ?,"
                f" embedding = {d.vector_mark}, model_id = ?, source = ?, updated_at = ?"
                f" WHERE id = ? RETURNING {MEMORY_COLS}",
                (
                    write.content,
                    meta,
                    write.content_hash,
                    d.vector_value(vec),
                    write.model_id,
                    write.source,
                    now,
                    memory_id,
                ),
            )
            self._history(
                s, tenant, memory_id, event, old[0], write.content, now, source or write.source
            )
        return self._memory(shared.required_row(row))

    def delete_memory(self, memory_id: str, *, tenant: str, source: str = "api") -> MemoryRecord:
        d = self.dialect
        with self._session(tenant, write=True) as s:
            old = s.row(_LIVE_CONTENT + d.lock_rows, (memory_id, tenant))
            if old is None:
                raise MemoryNotFound(f"no memory {memory_id!r}")
            now = d.time_value(shared.monotonic_now())
            row = s.row(
                "UPDATE memories SET deleted_at = ?, updated_at = ? WHERE id = ?"
                f" RETURNING {MEMORY_COLS}",
                (now, now, memory_id),
            )
            self._history(s, tenant, memory_id, "delete", old[0], None, now, source)
        return self._memory(shared.required_row(row))

    def memory_history(self, memory_id: str, *, tenant: str) -> list[MemoryEvent]:
        with self._session(tenant, snapshot=True) as s:
            self._get_memory(s, memory_id, tenant, True)
            found = s.rows(
                f"SELECT {HISTORY_COLS} FROM memory_history WHERE memory_id = ? ORDER BY id",
                (memory_id,),
            )
        return [self._event(r) for r in found]

    def find_memory_by_hash(self, scope: MemoryScope, content_hash: str) -> MemoryRecord | None:
        cond, params = shared.scope_condition(scope, "?")
        with self._session(scope.tenant) as s:
            row = s.row(
                f"SELECT {MEMORY_COLS} FROM memories WHERE {cond} AND deleted_at IS NULL"
                f" AND content_hash = ? ORDER BY created_at, {self.dialect.insertion_order}"
                " LIMIT 1",
                (*params, content_hash),
            )
        return self._memory(row) if row else None

    def memory_keyword_candidates(
        self, scope: MemoryScope, terms: Sequence[str], *, language: str, k: int
    ) -> list[tuple[str, float]]:
        if not terms or k <= 0:
            return []
        cond, params = shared.scope_condition(scope, "?")
        with self._session(scope.tenant) as s:
            # Insertion order: BM25 ties break by position, the same on both backends.
            texts = s.rows(
                f"SELECT id, content FROM memories WHERE {cond} AND deleted_at IS NULL"
                f" ORDER BY {self.dialect.insertion_order}",
                params,
            )
        return rank_texts([(t[0], t[1]) for t in texts], terms, language=language, k=k)

    # -- whole users -------------------------------------------------------------------------
    def list_users(
        self, *, tenant: str, prefix: str = "", after: str = "", limit: int = 50
    ) -> list[str]:
        # Each leg walks the (tenant, user_id, …) index from ``after`` and stops at ``limit``
        # distinct users, so a page costs the same however many users the tenant has.
        cond, params = "tenant = ? AND user_id > ?", list[Any]([tenant, after])
        if prefix:
            cond += " AND substr(user_id, 1, ?) = ?"
            params += [len(prefix), prefix]
        leg = f"SELECT DISTINCT user_id FROM {{}} WHERE {cond} ORDER BY user_id LIMIT ?"
        with self._session(tenant) as s:
            found = s.rows(
                f"SELECT user_id FROM ({leg.format('conversations')}) AS c"
                f" UNION SELECT user_id FROM ({leg.format('memories')}) AS m"
                " ORDER BY user_id LIMIT ?",
                (*params, limit, *params, limit, limit),
            )
        return [r[0] for r in found]

    def erase_user(self, *, tenant: str, user_id: str) -> ErasureReport:
        owner = (tenant, user_id)
        with self._erasing():
            with self._session(tenant, write=True) as s:
                report = self._erase_rows(s, owner)
            # The user's recall index holds their messages' text: it goes too, erased alike.
            with contextlib.suppress(CollectionNotFound):
                self.delete_collection(recall_collection(user_id), tenant=tenant)
        return report

    def _erase_rows(self, s: Session, owner: tuple[str, str]) -> ErasureReport:
        messages = s.run(
            f"DELETE FROM messages WHERE conversation_id IN ({_USER_CONVERSATIONS})", owner
        )
        conversations = s.run("DELETE FROM conversations WHERE tenant = ? AND user_id = ?", owner)
        history = s.run(f"DELETE FROM memory_history WHERE memory_id IN ({_USER_MEMORIES})", owner)
        memories = s.run("DELETE FROM memories WHERE tenant = ? AND user_id = ?", owner)
        # Analytics events carry the user's questions: they go too, and an ``erasure`` event
        # tells the readers of past queries (suggestions) to read them again.
        if s.run("DELETE FROM events WHERE tenant = ? AND user_id = ?", owner):
            s.run(
                "INSERT INTO events (tenant, kind, created_at) VALUES (?, 'erasure', ?)",
                (owner[0], self.dialect.time_value(shared.monotonic_now())),
            )
        erase_outbox(s, *owner)  # and those still waiting to be forwarded
        # So do the user's LangGraph threads (their checkpoints hold the conversation state).
        erase_user_checkpoints(s, *owner)
        # And their agent state: everything under user/<id> (engram.state).
        cond, params = namespace_prefix(user_home(owner[1]))
        state = s.run(f"DELETE FROM state WHERE tenant = ? AND {cond}", (owner[0], *params))
        return ErasureReport(conversations, messages, memories, history, state)

    def export_user(self, *, tenant: str, user_id: str) -> dict[str, Any]:
        owner, seq = (tenant, user_id), self.dialect.insertion_order
        with self._session(tenant, snapshot=True) as s:
            conversations = s.rows(
                f"SELECT {CONVERSATION_COLS} FROM conversations WHERE tenant = ? AND user_id = ?"
                f" ORDER BY created_at, {seq}",
                owner,
            )
            messages = s.rows(
                f"SELECT {MESSAGE_COLS} FROM messages"
                f" WHERE conversation_id IN ({_USER_CONVERSATIONS}) ORDER BY id",
                owner,
            )
            memories = s.rows(
                f"SELECT {MEMORY_COLS} FROM memories WHERE tenant = ? AND user_id = ?"
                f" ORDER BY created_at, {seq}",
                owner,
            )
            history = s.rows(
                f"SELECT {HISTORY_COLS} FROM memory_history"
                f" WHERE memory_id IN ({_USER_MEMORIES}) ORDER BY id",
                owner,
            )
            state = user_state(s, self.dialect, tenant, user_id)
        exported_at = self.dialect.time_value(shared.monotonic_now())
        return {
            **shared.user_export(
                tenant,
                user_id,
                shared.required(self.dialect.decoding.time(exported_at, False)),
                [self._conversation(r) for r in conversations],
                [self._message(r) for r in messages],
                [self._memory(r) for r in memories],
                [self._event(r) for r in history],
            ),
            "state": state,
        }

    # -- moving data (engram.transfer) -------------------------------------------------------
    def _keep_existing(
        self, s: Session, table: str, row_id: str, tenant: str, on_conflict: OnConflict
    ) -> bool:
        """Whether the imported row ``row_id`` must be skipped because it exists; deleted
        first (children cascade) for "replace". Another tenant's row is a Conflict (on
        PostgreSQL row-level security hides it, and the INSERT's unique violation is one)."""
        row = s.row(f"SELECT tenant FROM {table} WHERE id = ?", (row_id,))
        if row is None:
            return False
        what = table[:-1]
        if row[0] != tenant:
            raise Conflict(f"{what} {row_id!r} belongs to another tenant")
        if on_conflict == "skip":
            return True
        if on_conflict == "error":
            raise Conflict(
                f"{what} {row_id!r} already exists",
                hint="import with --merge to keep existing ones, or --replace to overwrite them",
            )
        s.run(f"DELETE FROM {table} WHERE id = ?", (row_id,))
        return False

    def _import(
        self,
        tenant: str,
        on_conflict: OnConflict,
        table: str,
        statements: tuple[str, str],
        entries: Iterable[tuple[str, tuple[Any, ...], list[tuple[Any, ...]]]],
    ) -> list[str]:
        """Insert rows of ``table`` with their children in one transaction: ``statements``
        inserts a parent and a child; ``entries`` are (id, parent values, children values).
        Returns the ids written (a skipped existing row is not)."""
        parent_sql, child_sql = statements
        written: list[str] = []
        with self._session(tenant, write=True) as s:
            for row_id, parent, children in entries:
                if self._keep_existing(s, table, row_id, tenant, on_conflict):
                    continue
                s.run(parent_sql, parent)
                s.run_many(child_sql, children)
                written.append(row_id)
        return written

    def import_conversations(
        self, tenant: str, items: Sequence[ConversationDump], *, on_conflict: OnConflict
    ) -> list[str]:
        d, json = self.dialect, shared.metadata_json
        owner, (owner_col, owner_mark) = self._child_owner(tenant)
        statements = (
            f"INSERT INTO conversations ({CONVERSATION_COLS})"
            f" VALUES (?, ?, ?, ?, {d.json_mark}, ?, ?)",
            f"INSERT INTO messages ({owner_col}conversation_id, role, content, metadata,"
            f" created_at, speaker) VALUES ({owner_mark}?, ?, ?, {d.json_mark}, ?, ?)",
        )
        entries = (
            (
                c.id,
                (c.id, tenant, c.user_id, c.title, json(c.metadata), c.created_at, c.updated_at),
                [
                    (*owner, c.id, m.role, m.content, json(m.metadata), m.created_at, m.speaker)
                    for m in item.messages
                ],
            )
            for item in items
            for c in (item.conversation,)
        )
        return self._import(tenant, on_conflict, "conversations", statements, entries)

    def import_memories(
        self, tenant: str, items: Sequence[MemoryDump], *, on_conflict: OnConflict
    ) -> list[str]:
        d = self.dialect
        owner, (owner_col, owner_mark) = self._child_owner(tenant)
        statements = (
            "INSERT INTO memories (id, tenant, user_id, agent_id, content, metadata,"
            " content_hash, embedding, model_id, source, created_at, updated_at, deleted_at)"
            f" VALUES (?, ?, ?, ?, ?, {d.json_mark}, ?, {d.vector_mark}, ?, ?, ?, ?, ?)",
            f"INSERT INTO memory_history ({owner_col}memory_id, event, old_content,"
            f" new_content, created_at, source) VALUES ({owner_mark}?, ?, ?, ?, ?, ?)",
        )
        entries = (
            (
                m.id,
                (
                    m.id,
                    tenant,
                    m.user_id,
                    m.agent_id,
                    m.content,
                    shared.metadata_json(m.metadata),
                    item.content_hash,
                    d.vector_value(np.frombuffer(item.embedding, dtype=np.float32)),
                    m.model_id,
                    m.source,
                    m.created_at,
                    m.updated_at,
                    m.deleted_at,
                ),
                [
                    (*owner, m.id, h.event, h.old_content, h.new_content, h.created_at, h.source)
                    for h in item.history
                ],
            )
            for item in items
            for m in (item.record,)
        )
        return self._import(tenant, on_conflict, "memories", statements, entries)
