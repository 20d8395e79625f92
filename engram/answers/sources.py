"""What a chat answer draws on besides the collection's passages: turns of the user's
earlier conversations (recall) and the user's memories, as numbered passages of the prompt
whose citations say which kind of source each one is."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..memory.dates import spoken_date
from ..memory.rewrite import rewrite_heuristic, rewrite_with_llm
from ..memory.types import MemoryHit, RecallHit
from ..providers.llms.base import LLM, ChatMessage
from ..providers.llms.errors import LLMError
from ..types import SearchResult
from .prompt import select_passages

logger = logging.getLogger("engram.answers")


def conversation_passage(hit: RecallHit, language: str) -> SearchResult:
    """A recalled turn with the turns around it, dated, each line prefixed by its speaker."""
    lines = [f"{m.speaker or m.role}: {m.content.strip()}" for m in hit.context]
    text = "\n".join(lines)
    message = hit.message
    return SearchResult(
        chunk_id=message.id,
        document_key=message.conversation_id,
        document_id=0,
        version=0,
        title=f"Earlier conversation, {spoken_date(message.created_at, language)}",
        text=text,
        start=0,
        end=len(text),
        score=hit.score,
        metadata={
            "conversation_id": message.conversation_id,
            "message_id": message.id,
            "time": message.created_at,
        },
        explain=hit.explain,
        kind="conversation",
    )


def memory_passage(hit: MemoryHit) -> SearchResult:
    """A memory of the user, as a passage."""
    memory = hit.memory
    return SearchResult(
        chunk_id=0,
        document_key=memory.id,
        document_id=0,
        version=0,
        title="Remembered about the user (may be outdated)",
        text=memory.content,
        start=0,
        end=len(memory.content),
        score=hit.score,
        metadata={"memory_id": memory.id, "updated_at": memory.updated_at},
        explain=hit.explain,
        kind="memory",
    )


def with_sources(
    passages: list[SearchResult], extra: list[SearchResult], max_chars: int
) -> list[SearchResult]:
    """The collection's passages, then ``extra`` (recalled turns, memories): the passages
    are cut first, so that the user's own sources, short as they are, stay in the prompt."""
    room = max(max_chars - sum(len(e.text) for e in extra), 0)
    kept = select_passages(passages, room) if passages else []
    return [*kept, *extra]


def standalone_query(
    question: str,
    history: Sequence[ChatMessage],
    how: str,
    llm: LLM | None,
    language: str,
    limit: int,
) -> str:
    """The question to retrieve with: ``question`` made standalone from ``history`` (the
    conversation so far) by ``llm`` or by the heuristic, as ``how`` says
    (``ENGRAM_CHAT_REWRITE``); the question itself when there is no history. A failing
    model falls back to the heuristic. A rewrite longer than ``limit`` characters (the
    longest query, ENGRAM_MAX_QUERY_CHARS) is cut at a word, never below the question."""
    turns = [(m.role, m.content) for m in history]
    if not turns or how == "off" or len(question) >= limit:
        return question
    rewritten = None
    if llm is not None and how in ("auto", "llm"):
        try:
            rewritten = rewrite_with_llm(llm, question, turns)
        except LLMError as exc:
            logger.warning("rewriting the question with the model failed: %s", exc)
    if rewritten is None:
        rewritten = rewrite_heuristic(question, turns, language)
    if len(rewritten) > limit:
        rewritten = rewritten[: limit + 1].rsplit(" ", 1)[0].strip()
    return rewritten if len(rewritten) >= len(question) else question
