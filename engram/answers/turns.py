"""An answer inside a conversation, shared by ``POST /v1/chat`` and ``db.ask``: the earlier
turns it follows (to make a follow-up question standalone and to give the model the
dialogue), and the question and answer appended as one turn once the answer is complete."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from ..providers.llms.base import ChatMessage

if TYPE_CHECKING:
    from ..memory import MemoryService
    from .generate import AnswerEvent


def history_of(
    memory: MemoryService, conversation_id: str, *, last: int, tenant: str
) -> list[ChatMessage]:
    """The user and assistant messages among the conversation's ``last`` ones (0: none),
    oldest first."""
    if not last:
        return []
    return [
        ChatMessage(m.role, m.content)
        for m in memory.messages(conversation_id, last=last, tenant=tenant)
        if m.role in ("user", "assistant")
    ]


def remember(
    memory: MemoryService,
    conversation_id: str,
    question: str,
    reply: str,
    said: dict[str, Any],
    *,
    tenant: str,
) -> None:
    """Append the question and its answer as one turn; the answer's message keeps its
    citations, model and whether it was extractive in its metadata (``said``: the answer's
    ``to_dict()`` or its stream's ``citations`` and ``done`` data), so a reader of the
    conversation (the web app's chat page) can show where each answer came from."""
    metadata = {
        "citations": said.get("citations") or [],
        "model": said.get("model"),
        "extractive": bool(said.get("extractive")),
    }
    memory.append_turn(conversation_id, question, reply, tenant=tenant, metadata=metadata)


def remembering(
    events: Generator[AnswerEvent, None, None],
    memory: MemoryService,
    conversation_id: str,
    question: str,
    *,
    tenant: str,
) -> Generator[AnswerEvent, None, None]:
    """``events`` (a streamed answer) passed through, and the turn :func:`remember`-ed once
    they end with a successful ``done``: not when the stream ends in an error, nor when the
    reader closes it early (a client that went away)."""
    text: list[str] = []
    said: dict[str, Any] = {}
    ok = False
    try:
        for event in events:
            if event.type == "token":
                text.append(event.data.get("text", ""))
            elif event.type in ("citations", "done"):
                said.update(event.data)
                ok = event.type == "done" and bool(event.data.get("ok"))
            yield event
    finally:
        events.close()
    if ok:
        remember(memory, conversation_id, question, "".join(text), said, tenant=tenant)
