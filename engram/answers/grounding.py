"""What an answer is grounded in: the passages of a question, shared by the Python library
(:meth:`engram.Engram.ask`), ``engram ask``, ``POST /v1/chat``, ``POST /v1/chat/completions``
and the MCP ``ask`` tool.

The question is first made standalone from the conversation (by the model, or by the
heuristic of :mod:`engram.memory.rewrite`), then searched in the collection, in the user's
earlier conversations (recall) and in the user's memories; the passages of all three, and the
options of the answer (history, template, language, limits), make a :class:`Grounding` for
:func:`engram.answers.answer` or :func:`engram.answers.stream_answer`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..config import Settings
from ..search.multi import resolve
from ..types import Collection, SearchResult
from .generate import AnswerOptions
from .prompt import DEFAULT_MAX_CONTEXT_CHARS
from .sources import conversation_passage, memory_passage, standalone_query, with_sources

if TYPE_CHECKING:
    from ..memory import MemoryService
    from ..providers.llms import LLM, ChatMessage
    from ..search.searcher import SearchResponse
    from ..store.contract import RetrievalStore


class Library(Protocol):
    """What grounding uses of :class:`engram.Engram` (named here, not imported: the engine
    imports its answering part, :mod:`engram.asking`, which imports this module)."""

    settings: Settings

    @property
    def store(self) -> RetrievalStore: ...

    @property
    def memory(self) -> MemoryService: ...

    def search(
        self,
        query: str,
        *,
        collection: str | Sequence[str] = ...,
        k: int = ...,
        mode: Literal["hybrid", "keyword", "vector"] = ...,
        where: dict[str, Any] | None = ...,
        rerank: bool = ...,
        highlight: bool = ...,
        tenant: str = ...,
    ) -> SearchResponse: ...


# A prompt's passages when the caller does not say: 8 chunks of 256 tokens, or as many of a
# collection's smaller chunks as hold about as much text (multilingual-e5-small's 128-token
# chunks: 16), so that a French collection's prompt is not half as long. The prompt's
# character budget (DEFAULT_MAX_CONTEXT_CHARS) bounds it either way.
PROMPT_PASSAGES = 8
PROMPT_CHUNK_TOKENS: int = Settings.model_fields["chunk_tokens"].default  # the default size
MAX_PASSAGES = 50  # the most passages an answer may be grounded in
PASSAGES_HELP = (
    "Passages retrieved to answer from. Default: 8 of 256-token chunks, or as many of a"
    " collection's smaller chunks as hold as much text (16 of 128)."
)


def default_passages(targets: Sequence[Collection]) -> int:
    """How many passages a prompt from ``targets`` gets by default (see PROMPT_PASSAGES)."""
    sizes = [c.settings.get("chunk_tokens") for c in targets]
    smallest = min((t for t in sizes if isinstance(t, int) and t > 0), default=None)
    if smallest is None or smallest >= PROMPT_CHUNK_TOKENS:
        return PROMPT_PASSAGES
    return min(MAX_PASSAGES, round(PROMPT_PASSAGES * PROMPT_CHUNK_TOKENS / smallest))


@dataclass(slots=True)
class Grounding:
    """``query``: what was searched (the question, made standalone); ``passages``: numbered
    sources for the prompt, best first; ``options``: how to answer."""

    query: str
    passages: list[SearchResult]
    options: AnswerOptions


def ground(
    db: Library,
    llm: LLM | None,
    question: str,
    history: Sequence[ChatMessage] = (),
    *,
    tenant: str,
    collection: str | Sequence[str],
    user_id: str | None = None,
    k: int | None = None,
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid",
    where: dict[str, Any] | None = None,
    rerank: bool = False,
    exclude_conversation: str | None = None,
) -> Grounding:
    """Retrieve the passages answering ``question`` (after ``history``) in ``tenant`` for
    ``user_id`` (None: no recall, no memories). ``collection``: one, a list or "*" (as in
    search; the answer's language is the first one's). Raises CollectionNotFound for a
    collection the tenant does not have. ``k``: the passages searched for (default:
    :func:`default_passages`)."""
    settings = db.settings
    targets = resolve(db.store, collection, tenant=tenant)
    language = targets[0].language if targets else "en"
    query = standalone_query(
        question, history, settings.chat_rewrite, llm, language, settings.max_query_chars
    )
    passages = db.search(
        query,
        collection=collection,
        k=k or default_passages(targets),
        mode=mode,
        where=where,
        rerank=rerank,
        highlight=False,
        tenant=tenant,
    ).results
    extra = []
    if user_id and settings.chat_recall:
        recalled = db.memory.recall(
            query,
            user_id=user_id,
            k=settings.chat_recall,
            context=1,
            exclude_conversation=exclude_conversation,
            tenant=tenant,
        )
        extra += [conversation_passage(h, language) for h in recalled]
    if user_id:
        extra += [
            memory_passage(h) for h in db.memory.search(query, user_id=user_id, k=5, tenant=tenant)
        ]
    options: AnswerOptions = {
        "history": history,
        "template": settings.answer_template,
        "language": language if language in ("en", "fr") else "en",
        "max_tokens": settings.llm_max_tokens,
        "timeout": settings.llm_timeout,
    }
    return Grounding(query, with_sources(passages, extra, DEFAULT_MAX_CONTEXT_CHARS), options)
