"""The memory API of an engram database: ``db.memory`` is a :class:`MemoryService`.

Two things per user of a tenant:

* **conversations**: ordered messages (system, user, assistant, tool), read back whole or as
  the last N;
* **memories**: short facts about the user, embedded with the database's model, found again
  by hybrid search (BM25 + vector, fused like document search), versioned in a history.

Memories are deduplicated on write: adding a memory that is the same text as a live memory of
the same user and agent (ignoring case and spacing), or whose vector has a cosine of at least
:data:`DEDUP_THRESHOLD` with one, updates that memory instead (history event ``merge``; the new
wording replaces the old, which stays in the history; metadata is merged, the new keys
winning). Everything is scoped by tenant: an id of another tenant is simply not found.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..search.analyzer import detect_language, get_analyzer
from ..search.fusion import Fused, fuse, resolve_alpha
from . import validation as check
from .types import (
    Conversation,
    ErasureReport,
    MemoryEvent,
    MemoryHit,
    MemoryRecord,
    MemoryScope,
    MemoryWrite,
    Message,
)

if TYPE_CHECKING:  # the store imports this package's types: import it for typing only
    from ..config import Settings
    from ..providers.embedders.base import Embedder
    from ..store.contract import MemoryStore
    from ..types import SearchMode
    from .recall import Recall, RecallHit

logger = logging.getLogger("engram.memory")

DEFAULT_TENANT = "default"

# Cosine similarity from which a new memory counts as a restatement of an existing one of the
# same user and agent, and is merged into it. 0.92 is a conservative starting point for
# bge-small-en-v1.5, whose cosines run high (unrelated sentences often score 0.5 or more); it
# has not been tuned on a dataset. Raise it to merge less, lower it to merge more.
DEDUP_THRESHOLD = 0.92


def normalise(text: str) -> str:
    """The form two texts must share to be the same memory: case-folded, spacing collapsed."""
    return " ".join(text.casefold().split())


def content_hash(text: str) -> str:
    """SHA-256 of :func:`normalise` (the exact-duplicate key stored with each memory)."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


def _new_id() -> str:
    return uuid.uuid4().hex


class MemoryService:
    """Conversations and long-term memories of users, on top of an engram store.

    Obtain it as ``db.memory``; the embedder is loaded on the first memory write or search.
    """

    def __init__(
        self,
        store: MemoryStore,
        settings: Settings,
        embedder: Callable[[], Embedder],
        recall: Recall | None = None,
        on_user_messages: Callable[[str, str, builtins.list[int]], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._embedder = embedder
        # Called with (tenant, conversation id, message ids) when user messages are appended
        # to a conversation that extracts memories (the engine queues an extraction job).
        self._on_user_messages = on_user_messages
        # Conversation recall; None for a store that only keeps memories (no index).
        self._recall = recall
        # Check-then-write deduplication must not interleave with another add in this process.
        self._add_lock = threading.Lock()

    # -- memories ----------------------------------------------------------------------------
    def add(
        self,
        content: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        source: str = "api",
        tenant: str = DEFAULT_TENANT,
    ) -> MemoryRecord:
        """Remember ``content`` for ``user_id`` (and ``agent_id``, if given).

        If a live memory of the same user and agent says the same thing (same normalised text,
        or cosine ≥ :data:`DEDUP_THRESHOLD`), that memory is updated instead and returned with
        ``deduplicated=True``. ``source`` records provenance (a conversation or message id).
        """
        text = check.content(content).strip()
        scope = MemoryScope(
            check.ident(tenant, "tenant"),
            check.ident(user_id, "user_id"),
            check.optional_ident(agent_id, "agent_id"),
            exact_agent=True,
        )
        write = self._write(text, check.metadata(metadata), check.ident(source, "source"))
        with self._add_lock:
            target = self.store.find_memory_by_hash(scope, write.content_hash)
            if target is None:
                near = self.store.memory_vector_candidates(
                    scope, write.embedding, model_id=write.model_id, k=1
                )
                if near and near[0][1] >= DEDUP_THRESHOLD:
                    target = self.store.get_memory(near[0][0], tenant=scope.tenant)
            if target is None:
                return self.store.add_memory(_new_id(), scope, write)
            write.metadata = {**target.metadata, **write.metadata}
            merged = self.store.update_memory(
                target.id, tenant=scope.tenant, write=write, event="merge"
            )
        return dataclasses.replace(merged, deduplicated=True)

    def get(
        self, memory_id: str, *, tenant: str = DEFAULT_TENANT, include_deleted: bool = False
    ) -> MemoryRecord:
        """A live memory (or a deleted one too, with ``include_deleted``); raises
        MemoryNotFound."""
        return self.store.get_memory(memory_id, tenant=tenant, include_deleted=include_deleted)

    def update(
        self,
        memory_id: str,
        content: str,
        *,
        metadata: dict[str, Any] | None = None,
        source: str = "api",
        tenant: str = DEFAULT_TENANT,
    ) -> MemoryRecord:
        """Replace a memory's content (re-embedded; history 'update'). ``metadata``, when
        given, replaces the old metadata; otherwise it is kept. ``source`` says where the new
        content comes from (in the history; the memory keeps its first provenance)."""
        text = check.content(content).strip()
        new_metadata = None if metadata is None else check.metadata(metadata)
        current = self.store.get_memory(memory_id, tenant=tenant)
        write = self._write(
            text, current.metadata if new_metadata is None else new_metadata, current.source
        )
        return self.store.update_memory(
            memory_id,
            tenant=tenant,
            write=write,
            event="update",
            source=check.ident(source, "source"),
        )

    def delete(self, memory_id: str, *, source: str = "api", tenant: str = DEFAULT_TENANT) -> None:
        """Forget a memory: it leaves search and lists at once (history 'delete', with
        ``source``). Its row and history stay readable through :meth:`history` until
        :meth:`erase_user`."""
        self.store.delete_memory(memory_id, tenant=tenant, source=check.ident(source, "source"))

    def history(
        self, memory_id: str, *, tenant: str = DEFAULT_TENANT
    ) -> builtins.list[MemoryEvent]:
        """Every change of a memory, oldest first (also for a deleted memory)."""
        return self.store.memory_history(memory_id, tenant=tenant)

    def list(
        self,
        user_id: str,
        *,
        agent_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        include_deleted: bool = False,
        tenant: str = DEFAULT_TENANT,
    ) -> builtins.list[MemoryRecord]:
        """The user's memories, most recently updated first; ``agent_id`` narrows them to
        one agent's (by default, every agent's and the user's own)."""
        scope = self._scope(tenant, user_id, agent_id)
        return self.store.list_memories(
            scope,
            limit=check.bounded(limit, "limit", 1, check.MAX_LIMIT),
            offset=check.bounded(offset, "offset", 0, 2**62),
            include_deleted=include_deleted,
        )

    def search(
        self,
        query: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        k: int = 10,
        tenant: str = DEFAULT_TENANT,
    ) -> builtins.list[MemoryHit]:
        """The user's memories best matching ``query``, best first: BM25 and cosine legs
        over the user's live memories, fused as the ``fusion`` setting says."""
        text = check.query(query, self.settings.max_query_chars)
        k = check.bounded(k, "k", 1, check.MAX_K)
        scope = self._scope(tenant, user_id, agent_id)
        depth = max(self.settings.candidates, k)
        embedder = self._embedder()
        vector = self.store.memory_vector_candidates(
            scope, embedder.embed_query(text), model_id=embedder.model_id, k=depth
        )
        language: str = self.settings.language
        if language == "auto":
            language = detect_language([text])
        terms = get_analyzer(language).terms(text)  # repeats weigh more, as in document search
        keyword = self.store.memory_keyword_candidates(scope, terms, language=language, k=depth)
        # fuse() ranks integer ids: number the memory ids of both legs.
        ids = list(dict.fromkeys([m for m, _ in vector] + [m for m, _ in keyword]))
        number = {m: i for i, m in enumerate(ids)}
        fused = fuse(
            [(number[m], s) for m, s in keyword],
            [(number[m], s) for m, s in vector],
            method=self.settings.fusion,
            alpha=resolve_alpha(self.settings.fusion_alpha, len(terms))[0],
            rrf_k=self.settings.rrf_k,
        )[:k]
        records = self.store.get_memories([ids[f.id] for f in fused], tenant=scope.tenant)
        return [
            MemoryHit(records[ids[f.id]], f.score, _explain(f))
            for f in fused
            if ids[f.id] in records  # deleted since ranking began
        ]

    # -- conversations -----------------------------------------------------------------------
    def create_conversation(
        self,
        user_id: str,
        *,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
        extract_memories: bool = False,
        agent_id: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Conversation:
        """Start a conversation of ``user_id``. With ``extract_memories`` (off by default)
        and an LLM configured, a background job turns what the user says in it into
        memories (of ``agent_id``, if given): see :mod:`engram.memory.extract`. Both are
        kept in the conversation's metadata (``extract_memories``, ``agent_id``)."""
        meta = check.metadata(metadata)
        if extract_memories:
            meta["extract_memories"] = True
        if agent_id is not None:
            meta["agent_id"] = check.ident(agent_id, "agent_id")
        return self.store.create_conversation(
            _new_id(),
            tenant=check.ident(tenant, "tenant"),
            user_id=check.ident(user_id, "user_id"),
            title=check.title(title),
            metadata=meta,
        )

    def conversation(self, conversation_id: str, *, tenant: str = DEFAULT_TENANT) -> Conversation:
        """One conversation; raises ConversationNotFound."""
        return self.store.get_conversation(conversation_id, tenant=tenant)

    def conversations(
        self, user_id: str, *, limit: int = 100, offset: int = 0, tenant: str = DEFAULT_TENANT
    ) -> builtins.list[Conversation]:
        """The user's conversations, most recently active first."""
        return self.store.list_conversations(
            tenant=tenant,
            user_id=user_id,
            limit=check.bounded(limit, "limit", 1, check.MAX_LIMIT),
            offset=check.bounded(offset, "offset", 0, 2**62),
        )

    def append(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        metadata: dict[str, Any] | None = None,
        speaker: str | None = None,
        created_at: str | datetime | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> Message:
        """Append a message; ``role`` is one of system, user, assistant, tool. ``speaker``
        names who said it when the role is not enough (people chatting with each other);
        ``created_at`` (ISO 8601, UTC when it has no offset) dates it when importing history.
        The message becomes findable by :meth:`recall`."""
        return self.append_many(
            conversation_id,
            [
                {
                    "role": role,
                    "content": content,
                    "metadata": metadata,
                    "speaker": speaker,
                    "created_at": created_at,
                }
            ],
            tenant=tenant,
        )[0]

    def append_many(
        self,
        conversation_id: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> builtins.list[Message]:
        """Append several messages at once (``{"role", "content", "metadata"?, "speaker"?,
        "created_at"?}`` each) in one transaction: a reader sees all or none of them."""
        if not messages:
            raise InvalidInput("no messages to append")
        writes = [check.message(m) for m in messages]
        written = self.store.append_messages(conversation_id, tenant=tenant, messages=writes)
        conversation = self.store.get_conversation(conversation_id, tenant=tenant)
        self._recall_soon(tenant, conversation.user_id)
        said = [m.id for m in written if m.role == "user"]
        if said and conversation.metadata.get("extract_memories") and self._on_user_messages:
            self._on_user_messages(tenant, conversation_id, said)
        return written

    def append_turn(
        self,
        conversation_id: str,
        question: str,
        answer: str,
        *,
        tenant: str = DEFAULT_TENANT,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[Message, Message]:
        """Append a user question and the assistant's answer together: a reader sees the
        whole turn or none of it. ``metadata``: the answer's (its citations, say)."""
        reply: dict[str, Any] = {"role": "assistant", "content": answer}
        if metadata is not None:
            reply["metadata"] = metadata
        user, assistant = self.append_many(
            conversation_id,
            [{"role": "user", "content": question}, reply],
            tenant=tenant,
        )
        return user, assistant

    def messages(
        self, conversation_id: str, *, last: int | None = None, tenant: str = DEFAULT_TENANT
    ) -> builtins.list[Message]:
        """The conversation's messages, oldest first; ``last=N``: only the N most recent."""
        if last is not None:
            last = check.bounded(last, "last", 1, 2**31)
        return self.store.list_messages(conversation_id, tenant=tenant, last=last)

    def delete_conversation(self, conversation_id: str, *, tenant: str = DEFAULT_TENANT) -> None:
        """Delete a conversation and its messages, from recall too (memories drawn from it
        stay)."""
        if self._recall is None:
            self.store.delete_conversation(conversation_id, tenant=tenant)
            return
        owner = self.store.get_conversation(conversation_id, tenant=tenant).user_id
        ids = self.store.conversation_message_ids(conversation_id, tenant=tenant)
        self.store.delete_conversation(conversation_id, tenant=tenant)
        self._recall.forget(tenant, owner, ids)

    # -- recall ------------------------------------------------------------------------------
    def recall(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        conversation_id: str | None = None,
        role: str | None = None,
        speaker: str | None = None,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        context: int = 1,
        mode: SearchMode = "hybrid",
        exclude_conversation: str | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> builtins.list[RecallHit]:
        """The user's past messages (of every conversation, or of ``conversation_id``) that
        best match ``query``, best first: hybrid search over every message appended so far,
        narrowed by ``role``, ``speaker`` and a time range (``since`` ≤ time < ``until``).
        Each hit carries ``context`` messages before and after it, and ``explain``: its rank
        and score in each leg. ``exclude_conversation`` leaves one conversation out (a chat's
        own, whose turns are in its history already)."""
        if self._recall is None:
            raise InvalidInput("this engram has no conversation recall")
        return self._recall.search(
            query,
            tenant=check.ident(tenant, "tenant"),
            user_id=check.ident(user_id, "user_id"),
            k=k,
            conversation_id=conversation_id,
            role=role,
            speaker=speaker,
            since=since,
            until=until,
            context=context,
            mode=mode,
            exclude_conversation=exclude_conversation,
        )

    def _recall_soon(self, tenant: str, user_id: str) -> None:
        """Index the messages just appended. A failure here loses nothing: they stay marked
        unindexed and the next recall of their user indexes them."""
        if self._recall is None:
            return
        try:
            self._recall.catch_up(tenant, user_id)
        except Exception:  # noqa: BLE001 - the messages are stored; recall catches up later
            logger.warning("indexing messages for recall failed; recall will retry", exc_info=True)

    # -- whole users -------------------------------------------------------------------------
    def users(
        self,
        *,
        prefix: str = "",
        after: str = "",
        limit: int = 50,
        tenant: str = DEFAULT_TENANT,
    ) -> builtins.list[str]:
        """The tenant's users that own a conversation or a memory, by id: the first ``limit``
        after ``after`` (the last id of the previous page) starting with ``prefix``. There is
        no table of users: a user exists through what is stored for them."""
        if len(prefix) > 200 or len(after) > 200:
            raise InvalidInput("a user id has at most 200 characters")
        return self.store.list_users(
            tenant=check.ident(tenant, "tenant"),
            prefix=prefix,
            after=after,
            limit=check.bounded(limit, "limit", 1, check.MAX_LIMIT),
        )

    def export_user(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        """Everything stored about the user, as a JSON-able dict: conversations with their
        messages, memories (deleted ones too) with their history. Vectors are left out."""
        return self.store.export_user(
            tenant=check.ident(tenant, "tenant"), user_id=check.ident(user_id, "user_id")
        )

    def erase_user(self, user_id: str, *, tenant: str = DEFAULT_TENANT) -> ErasureReport:
        """Delete every conversation, message, memory and history entry of the user, at once
        and for good (deleted memories included); returns how many rows of each went. The
        user's analytics events and LangGraph threads (checkpoints written for the user by
        :class:`~engram.integrations.langgraph.EngramSaver`) go too, uncounted."""
        return self.store.erase_user(
            tenant=check.ident(tenant, "tenant"), user_id=check.ident(user_id, "user_id")
        )

    # -- helpers -----------------------------------------------------------------------------
    def _scope(self, tenant: str, user_id: str, agent_id: str | None) -> MemoryScope:
        return MemoryScope(
            check.ident(tenant, "tenant"),
            check.ident(user_id, "user_id"),
            check.optional_ident(agent_id, "agent_id"),
        )

    def _write(self, text: str, metadata: dict[str, Any], source: str) -> MemoryWrite:
        embedder = self._embedder()
        return MemoryWrite(
            content=text,
            content_hash=content_hash(text),
            embedding=embedder.embed_batch([text])[0],
            model_id=embedder.model_id,
            metadata=metadata,
            source=source,
        )


def _explain(f: Fused) -> dict[str, Any]:
    """Rank and raw score of a hit in each leg (None where the leg did not find it)."""
    return {
        "keyword": {"rank": f.keyword.rank, "score": round(f.keyword.score, 6)}
        if f.keyword
        else None,
        "vector": {"rank": f.vector.rank, "score": round(f.vector.score, 6)} if f.vector else None,
    }
