"""Conversation recall: search a user's past conversations, turn by turn.

Every message is indexed for recall after it is written: BM25 + vector, with the analyzers,
typo expansion and fusion of document search, in a collection of the user's own named
``recall/<user_id>``. Collection names with a ``/`` are engram's own: a user cannot create
one, and they are left out of collection lists and exports (the index is derived from the
messages and rebuilt from them).

The messages table is the source of truth and marks each message *indexed* once it is in the
index. Whatever writes messages (an append, an import, a restore, a migration from before
recall) leaves them unmarked, and :meth:`Recall.catch_up` indexes every unmarked message of a
user before each recall, so no message is ever missing from it, whichever process wrote it
and even if that process died between its two steps. Indexing is idempotent (a message is a
document keyed by its id; an unchanged one is skipped), so two processes catching up at once
only repeat work.

A turn is indexed as its speaker and date, then the message before it in its conversation
(the question a reply answers, the subject a pronoun refers to), then the turn itself:
see :func:`represent` and docs/benchmarks.md for the representations measured.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from ..errors import CollectionNotFound, Conflict, InvalidInput
from ..ingest.pipeline import IngestPipeline
from ..search.analyzer import LANGUAGES, detect_language
from ..search.searcher import SearchRequest
from ..types import Collection, LoadedDocument, SearchMode, SearchResult
from . import validation as check
from .dates import spoken_date
from .types import ROLES, Message, RecallHit, recall_collection

if TYPE_CHECKING:
    from ..config import Settings
    from ..embedders import Embedders
    from ..search.searcher import Searcher
    from ..store.contract import Store

logger = logging.getLogger("engram.memory")

# How a turn is represented in the index (measured on the development set, see
# docs/benchmarks.md): "turn" alone; "speaker" prefixed with who said it; "dated" also with
# the session's date; "context" also with the previous message of the conversation.
Representation = Literal["turn", "speaker", "dated", "context"]
REPRESENTATIONS: tuple[Representation, ...] = ("turn", "speaker", "dated", "context")
DEFAULT_REPRESENTATION: Representation = "context"
# Messages indexed per batch (one embedding run, one transaction) when catching up.
BATCH = 256
# The derived index files are saved after this many messages indexed by a process (a save
# rewrites them whole); until then other processes catch up from the change log.
SAVE_EVERY = 2_000
# Weight of recency in the final score (see Recall._rank); measured on the development set.
DEFAULT_RECENCY = 0.0
MAX_CONTEXT = 20  # most neighbouring turns returned on each side of a hit
_PREVIOUS_CHARS = 300  # how much of the previous message a turn's representation carries


def represent(
    message: Message, previous: str | None, how: Representation, language: str
) -> tuple[str, str]:
    """(title, text) a message is indexed as; the title is keyword-indexed and embedded with
    the text, as a document's title is."""
    who = message.speaker or message.role
    if how == "turn":
        return "", message.content
    if how == "speaker":
        return who, message.content
    title = f"{who}, {spoken_date(message.created_at, language)}"
    if how == "dated" or not previous:
        return title, message.content
    before = previous if len(previous) <= _PREVIOUS_CHARS else previous[:_PREVIOUS_CHARS] + "…"
    return title, f"{before}\n{who}: {message.content}"


class Recall:
    """Indexes users' messages and searches them (``db.memory.recall``)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        embedders: Embedders,
        searcher: Searcher,
        *,
        representation: Representation = DEFAULT_REPRESENTATION,
        recency: float = DEFAULT_RECENCY,
    ) -> None:
        self.store = store
        self.settings = settings
        self._embedders = embedders
        self.searcher = searcher
        self.representation = representation
        self.recency = recency
        self._lock = threading.Lock()
        self._since_save = 0

    # -- indexing ------------------------------------------------------------------------------
    def catch_up(self, tenant: str, user_id: str) -> Collection | None:
        """Index every message of the user not indexed yet; returns the user's index (None
        while the user has said nothing). An index built with another embedding model (the
        configured one changed) is dropped and built again from the messages: it is derived
        data."""
        collection = self._current(tenant, user_id)
        done = 0
        while True:
            pending = self.store.unindexed_messages(tenant=tenant, user_id=user_id, limit=BATCH)
            if not pending:
                break
            if collection is None:
                collection = self._create(tenant, user_id, [m.content for m, _ in pending])
            docs = [self._document(m, previous, collection.language) for m, previous in pending]
            embedder = self._embedders.for_collection(collection)
            pipeline = IngestPipeline(self.store, self.settings, embedder)
            report = pipeline.run(collection, docs, persist=False)
            if report.failed:
                first = report.errors[0][1] if report.errors else "unknown error"
                raise InvalidInput(f"could not index {report.failed} message(s): {first}")
            ids = [m.id for m, _ in pending]
            self.store.mark_messages_indexed(ids, tenant=tenant)
            done += len(ids)
            self.store.grow_vector_index(collection)
        if done:
            self._saved_later(done)
        return collection

    def _current(self, tenant: str, user_id: str) -> Collection | None:
        """The user's index, if it exists and holds the vectors of the model configured for
        its language (engram.embedders); one of another model is dropped (its messages
        marked for indexing again)."""
        try:
            collection = self.store.get_collection(
                recall_collection(user_id), tenant=tenant, counts=False
            )
        except CollectionNotFound:
            return None
        wanted = self._embedders.for_new(collection.language).model_id
        if collection.model_id == wanted:
            return collection
        logger.info(
            "recall index of %s was built with %s: rebuilding it with %s",
            user_id,
            collection.model_id,
            wanted,
        )
        self.store.mark_messages_unindexed(tenant=tenant, user_id=user_id)
        with contextlib.suppress(CollectionNotFound):  # another process got there first
            self.store.delete_collection(collection.name, tenant=tenant)
        return None

    def forget(self, tenant: str, user_id: str, message_ids: Sequence[int]) -> None:
        """Remove messages from the user's index (their conversation was deleted)."""
        try:
            collection = self.store.get_collection(
                recall_collection(user_id), tenant=tenant, counts=False
            )
        except CollectionNotFound:
            return
        self.store.delete_documents(collection, [str(i) for i in message_ids])
        self.store.sync()

    def _document(self, message: Message, previous: str | None, language: str) -> LoadedDocument:
        title, text = represent(message, previous, self.representation, language)
        return LoadedDocument(
            key=str(message.id),
            text=text,
            title=title,
            metadata={
                "conversation_id": message.conversation_id,
                "role": message.role,
                "speaker": message.speaker,
                "time": datetime.fromisoformat(message.created_at).timestamp(),
            },
            source=f"message {message.id}",
        )

    def _create(self, tenant: str, user_id: str, sample: list[str]) -> Collection:
        name = recall_collection(user_id)
        language: str = self.settings.language
        if language not in LANGUAGES:  # "auto": from the user's first messages
            language = detect_language(sample)
        embedder = self._embedders.for_new(language)  # derived data: follows the settings
        try:
            return self.store.create_collection(
                name,
                model_id=embedder.model_id,
                dimension=embedder.dimension,
                language=language,
                settings=self.settings.chunking(embedder.model_id),
                tenant=tenant,
            )
        except Conflict:  # created meanwhile by another process
            return self.store.get_collection(name, tenant=tenant, counts=False)

    def _saved_later(self, indexed: int) -> None:
        with self._lock:
            self._since_save += indexed
            due = self._since_save >= SAVE_EVERY
            if due:
                self._since_save = 0
        if due:
            self.store.sync()

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        tenant: str,
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
    ) -> list[RecallHit]:
        """The user's past messages best matching ``query``, best first, each with
        ``context`` turns before and after it."""
        text = check.query(query, self.settings.max_query_chars)
        k = check.bounded(k, "k", 1, check.MAX_K)
        context = check.bounded(context, "context", 0, MAX_CONTEXT)
        if role is not None and role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        conversation = (
            None if conversation_id is None else check.ident(conversation_id, "conversation_id")
        )
        who = None if speaker is None else check.ident(speaker, "speaker")
        start = None if since is None else check.timestamp(since, "since")
        end = None if until is None else check.timestamp(until, "until")
        collection = self.catch_up(tenant, user_id)
        if collection is None:
            return []  # nothing said yet
        where: dict[str, Any] | None = None
        if any(v is not None for v in (conversation, role, who, start, end)):
            # The filters select messages from the messages table's own columns; the index
            # is narrowed to those documents by key (no JSON read per message).
            ids = self.store.message_ids(
                tenant=tenant,
                user_id=user_id,
                conversation_id=conversation,
                role=role,
                speaker=who,
                since=start,
                until=end,
            )
            if not ids:
                return []
            where = {"$keys": [str(i) for i in ids]}
        # A long message is several chunks, and a chat leaves out its own conversation's
        # turns afterwards: ask for more, keep each message's best chunk.
        depth = min(k * 3 + (20 if exclude_conversation else 0), 1000)
        response = self.searcher.search(
            collection, SearchRequest(text, k=depth, mode=mode, where=where, highlight=False)
        )
        results = [
            r
            for r in response.results
            if exclude_conversation is None
            or r.metadata.get("conversation_id") != exclude_conversation
        ]
        ranked = self._rank(results)[:k]
        around = self.store.messages_around(
            [mid for mid, _, _ in ranked],
            tenant=tenant,
            user_id=user_id,
            before=context,
            after=context,
        )
        hits = []
        for mid, score, explain in ranked:
            turns = around.get(mid)
            if not turns:  # deleted since it was found
                continue
            message = next(m for m in turns if m.id == mid)
            hits.append(RecallHit(message, score, explain, turns))
        return hits

    def _rank(self, results: list[SearchResult]) -> list[tuple[int, float, dict[str, Any]]]:
        """(message id, score, explain), best first: each message's best chunk, its score
        raised by ``recency`` × the best score × its place in time among the candidates (0
        for the oldest, 1 for the newest), so that of two turns that match alike, the later
        one (the current state of a fact that changed) may come first. Off by default: it
        did not raise recall on the development set (docs/benchmarks.md)."""
        best: dict[int, tuple[float, float, dict[str, Any]]] = {}
        for r in results:
            mid = int(r.document_key)
            if mid not in best:
                best[mid] = (r.score, float(r.metadata.get("time") or 0.0), r.explain)
        if not best:
            return []
        times = [t for _, t, _ in best.values()]
        low, span = min(times), (max(times) - min(times)) or 1.0
        top = max(abs(s) for s, _, _ in best.values())  # in the units of the mode's scores
        ranked = []
        for mid, (score, when, explain) in best.items():
            boost = self.recency * top * (when - low) / span
            ranked.append((mid, score + boost, {**explain, "recency": round(boost, 6)}))
        ranked.sort(key=lambda h: -h[1])
        return ranked
