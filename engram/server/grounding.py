"""Grounding of the HTTP API's and MCP's answers (``POST /v1/chat``, ``POST
/v1/chat/completions``, the ``ask`` tool): :func:`engram.answers.grounding.ground` for the
caller's tenant, recorded as a ``chat`` analytics event of the caller."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ..answers.grounding import Grounding
from ..answers.grounding import ground as ground_in
from ..engine import Engram
from ..providers.llms import LLM, ChatMessage
from .observability import record_event
from .principal import Principal


def ground(
    db: Engram,
    llm: LLM | None,
    principal: Principal,
    question: str,
    history: Sequence[ChatMessage],
    *,
    collection: str | Sequence[str],
    user_id: str | None,
    k: int | None = None,
    mode: Literal["hybrid", "keyword", "vector"] = "hybrid",
    where: dict[str, Any] | None = None,
    rerank: bool = False,
    exclude_conversation: str | None = None,
    record: bool = True,
) -> Grounding:
    """:func:`engram.answers.grounding.ground` in the caller's tenant, then a ``chat`` event
    recorded (unless ``record`` is False: the caller records it)."""
    grounding = ground_in(
        db,
        llm,
        question,
        history,
        tenant=principal.tenant,
        collection=collection,
        user_id=user_id,
        k=k,
        mode=mode,
        where=where,
        rerank=rerank,
        exclude_conversation=exclude_conversation,
    )
    if record:
        record_event(
            principal,
            "chat",
            user_id=user_id,
            query=question,
            result_count=len(grounding.passages),
            collection=collection,
        )
    return grounding
