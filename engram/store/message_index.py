"""The store's side of conversation recall (:mod:`engram.memory.recall`), written once for
both backends: which messages are not in a user's recall index yet, marking them indexed,
and reading the turns around a hit. The index itself is a collection (documents, chunks,
derived indexes) like any other.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from ..errors import ConversationNotFound
from ..memory.types import Message
from . import rows as shared
from .rows import MESSAGE_COLS
from .session import Tables

_PREFIXED_MESSAGE_COLS = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLS.split(","))


def _parts(ids: list[int], size: int = 500) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


class MessageIndexTables(Tables):
    """Recall bookkeeping over the messages table (a base of MemoryTables)."""

    def _message(self, r: Sequence[object]) -> Message:
        return shared.message(r, self.dialect.decoding)

    def unindexed_messages(
        self, *, tenant: str, user_id: str, limit: int
    ) -> list[tuple[Message, str | None]]:
        # The message before each one comes in the same statement (one index probe each).
        with self._session(tenant, snapshot=True) as s:
            rows = s.rows(
                f"SELECT {_PREFIXED_MESSAGE_COLS}, (SELECT p.content FROM messages p"
                " WHERE p.conversation_id = m.conversation_id AND p.id < m.id"
                " ORDER BY p.id DESC LIMIT 1) AS previous FROM messages m"
                " JOIN conversations c ON c.id = m.conversation_id"
                " WHERE NOT m.indexed AND c.tenant = ? AND c.user_id = ?"
                " ORDER BY m.id LIMIT ?",
                (tenant, user_id, self.dialect.limit(limit)),
            )
        # (Named: PostgreSQL rows are keyed by column name, and "content" is taken.)
        return [(self._message(r[:-1]), r[-1]) for r in rows]

    def mark_messages_indexed(self, ids: Sequence[int], *, tenant: str) -> None:
        if not ids:
            return
        with self._session(tenant, write=True) as s:
            for part in _parts(list(ids)):
                s.run(
                    f"UPDATE messages SET indexed = TRUE WHERE id IN ({','.join('?' * len(part))})",
                    tuple(part),
                )

    def mark_messages_unindexed(self, *, tenant: str, user_id: str) -> None:
        with self._session(tenant, write=True) as s:
            s.run(
                "UPDATE messages SET indexed = FALSE WHERE conversation_id IN"
                " (SELECT id FROM conversations WHERE tenant = ? AND user_id = ?)",
                (tenant, user_id),
            )

    def messages_around(
        self, ids: Sequence[int], *, tenant: str, user_id: str, before: int, after: int
    ) -> dict[int, list[Message]]:
        out: dict[int, list[Message]] = {}
        with self._session(tenant, snapshot=True) as s:
            for message_id in dict.fromkeys(ids):
                row = s.row(
                    "SELECT m.conversation_id FROM messages m"
                    " JOIN conversations c ON c.id = m.conversation_id"
                    " WHERE m.id = ? AND c.tenant = ? AND c.user_id = ?",
                    (message_id, tenant, user_id),
                )
                if row is None:  # deleted since it was found
                    continue
                sql = f"SELECT {MESSAGE_COLS} FROM messages WHERE conversation_id = ? AND id"
                earlier = s.rows(
                    sql + " <= ? ORDER BY id DESC LIMIT ?",
                    (row[0], message_id, self.dialect.limit(before + 1)),
                )
                later = (
                    s.rows(
                        sql + " > ? ORDER BY id LIMIT ?",
                        (row[0], message_id, self.dialect.limit(after)),
                    )
                    if after
                    else []
                )
                out[message_id] = [self._message(r) for r in [*reversed(earlier), *later]]
        return out

    def conversation_message_ids(self, conversation_id: str, *, tenant: str) -> list[int]:
        with self._session(tenant, snapshot=True) as s:
            if (
                s.row(
                    "SELECT 1 FROM conversations WHERE id = ? AND tenant = ?",
                    (conversation_id, tenant),
                )
                is None
            ):
                raise ConversationNotFound(f"no conversation {conversation_id!r}")
            return [
                int(r[0])
                for r in s.rows(
                    "SELECT id FROM messages WHERE conversation_id = ? ORDER BY id",
                    (conversation_id,),
                )
            ]

    def message_ids(
        self,
        *,
        tenant: str,
        user_id: str,
        conversation_id: str | None = None,
        role: str | None = None,
        speaker: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[int]:
        conds = ["c.tenant = ?", "c.user_id = ?"]
        params: list[object] = [tenant, user_id]
        for column, value in (
            ("m.conversation_id = ?", conversation_id),
            ("m.role = ?", role),
            ("m.speaker = ?", speaker),
        ):
            if value is not None:
                conds.append(column)
                params.append(value)
        if since is not None:
            conds.append("m.created_at >= ?")
            params.append(self.dialect.time_value(since))
        if until is not None:
            conds.append("m.created_at < ?")
            params.append(self.dialect.time_value(until))
        with self._session(tenant, snapshot=True) as s:
            rows = s.rows(
                "SELECT m.id FROM messages m JOIN conversations c ON c.id = m.conversation_id"
                f" WHERE {' AND '.join(conds)} ORDER BY m.id",
                tuple(params),
            )
        return [int(r[0]) for r in rows]
