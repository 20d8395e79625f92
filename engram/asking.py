"""Answers from the library: ``db.ask(question)`` and ``db.ask_stream(question)``.

The passages are found as ``POST /v1/chat`` finds them (:mod:`engram.answers.grounding`: the
collection, and for a ``user_id`` their past conversations and memories); the answer is
written by the ``llm`` setting's model (a chain falls back in order), or quoted from the
passages when no model is configured. With a ``conversation_id`` the answer follows the
conversation's earlier turns and is appended to it (:mod:`engram.answers.turns`), as the
HTTP chat does.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, cast

from .config import Settings
from .errors import InvalidInput

if TYPE_CHECKING:
    from .answers import Answer, AnswerEvent
    from .answers.grounding import Grounding
    from .memory import MemoryService
    from .providers.llms import LLM, ChatMessage
    from .types import SearchMode


class AskMixin:
    """The answering part of :class:`engram.Engram`."""

    settings: Settings
    _lock: threading.Lock
    _llm: LLM | None = None

    if TYPE_CHECKING:  # engram.Engram's

        @property
        def memory(self) -> MemoryService: ...

    def llm(self) -> LLM | None:
        """The ``llm`` setting's model (built on first use), or None: extractive answers."""
        if not self.settings.llm:
            return None
        with self._lock:
            if self._llm is None:
                from .providers.llms import llm_chain

                self._llm = llm_chain(
                    self.settings.llm,
                    timeout=self.settings.llm_timeout,
                    retries=self.settings.llm_retries,
                    deadline=self.settings.llm_deadline,
                )
            return self._llm

    def ask(
        self,
        question: str,
        *,
        collection: str | Sequence[str] = "default",
        conversation_id: str | None = None,
        user_id: str | None = None,
        k: int | None = None,
        mode: SearchMode = "hybrid",
        where: dict[str, Any] | None = None,
        rerank: bool = False,
        history: Sequence[ChatMessage] = (),
        tenant: str = "default",
    ) -> Answer:
        """Answer ``question`` from ``collection`` (one, a list or ``"*"``), citing the
        passages used (document, version, character span).

        ``conversation_id``: the answer follows that conversation's earlier turns (a
        follow-up is made standalone before searching) and the question and answer are
        appended to it; its user's past conversations and memories are drawn on.
        ``user_id``: draw on that user's (default: the conversation's user, else nobody's).
        ``history``: earlier turns given directly instead of a conversation. ``k``: passages
        searched for (default: 8 of 256-token chunks, or as much text in smaller ones).
        Raises ``LLMUnavailable``/``LLMError`` when the configured model fails (nothing is
        appended then)."""
        from .answers import answer

        llm = self.llm()
        found = self._ground(
            llm,
            question,
            collection,
            conversation_id,
            user_id,
            history,
            k,
            mode,
            where,
            rerank,
            tenant,
        )
        result = answer(question, found.passages, llm, **found.options)
        if conversation_id:
            from .answers.turns import remember

            remember(
                self.memory, conversation_id, question, result.text, result.to_dict(), tenant=tenant
            )
        return result

    def ask_stream(
        self,
        question: str,
        *,
        collection: str | Sequence[str] = "default",
        conversation_id: str | None = None,
        user_id: str | None = None,
        k: int | None = None,
        mode: SearchMode = "hybrid",
        where: dict[str, Any] | None = None,
        rerank: bool = False,
        history: Sequence[ChatMessage] = (),
        tenant: str = "default",
    ) -> Generator[AnswerEvent, None, None]:
        """:meth:`ask` as events: ``token`` (``{"text"}``) as the model writes, then
        ``citations`` or ``error``, then ``done`` (see :class:`engram.answers.AnswerEvent`).
        The passages are searched before the first event; a model failure after that is an
        ``error`` event, not an exception. With ``conversation_id`` the turn is appended once
        the answer is complete (not when the stream is closed early or ends in an error)."""
        from .answers import stream_answer

        llm = self.llm()
        found = self._ground(
            llm,
            question,
            collection,
            conversation_id,
            user_id,
            history,
            k,
            mode,
            where,
            rerank,
            tenant,
        )
        events = stream_answer(question, found.passages, llm, **found.options)
        if not conversation_id:
            return events
        from .answers.turns import remembering

        return remembering(events, self.memory, conversation_id, question, tenant=tenant)

    def _ground(
        self,
        llm: LLM | None,
        question: str,
        collection: str | Sequence[str],
        conversation_id: str | None,
        user_id: str | None,
        history: Sequence[ChatMessage],
        k: int | None,
        mode: SearchMode,
        where: dict[str, Any] | None,
        rerank: bool,
        tenant: str,
    ) -> Grounding:
        from .answers.grounding import Library, ground
        from .answers.turns import history_of

        if conversation_id:
            if history:
                raise InvalidInput(
                    "pass history or conversation_id, not both",
                    hint="the conversation's own messages are its history",
                )
            conversation = self.memory.conversation(conversation_id, tenant=tenant)  # or 404
            user_id = user_id or conversation.user_id
            history = history_of(
                self.memory,
                conversation_id,
                last=self.settings.chat_history_messages,
                tenant=tenant,
            )
        return ground(
            cast(Library, self),  # the mixin of engram.Engram
            llm,
            question,
            history,
            tenant=tenant,
            collection=collection,
            user_id=user_id,
            k=k,
            mode=mode,
            where=where,
            rerank=rerank,
            exclude_conversation=conversation_id,
        )

    def _close_llm(self) -> None:
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
