"""Answers from the library: ``db.ask(question)`` and ``db.ask_stream(question)``.

The passages are found as ``POST /v1/chat`` finds them (:mod:`engram.answers.grounding`: the
collection, and for a ``user_id`` their past conversations and memories); the answer is
written by the ``llm`` setting's model (a chain falls back in order), or quoted from the
passages when no model is configured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

from .config import Settings

if TYPE_CHECKING:
    from .answers import Answer, AnswerEvent
    from .answers.grounding import Grounding
    from .providers.llms import LLM, ChatMessage
    from .types import SearchMode


class AskMixin:
    """The answering part of :class:`engram.Engram`."""

    settings: Settings
    _lock: threading.Lock
    _llm: LLM | None = None

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
        k: int | None = None,
        mode: SearchMode = "hybrid",
        where: dict[str, Any] | None = None,
        rerank: bool = False,
        user_id: str | None = None,
        history: Sequence[ChatMessage] = (),
        tenant: str = "default",
    ) -> Answer:
        """Answer ``question`` from ``collection`` (one, a list or ``"*"``), citing the
        passages used (document, version, character span). ``k``: passages searched for
        (default: 8 of 256-token chunks, or as much text in smaller ones); ``user_id`` also
        draws on that user's past conversations and memories; ``history``: the earlier
        turns, to make a follow-up question standalone. Raises ``LLMUnavailable``/``LLMError``
        when the configured model fails."""
        from .answers import answer

        llm = self.llm()
        found = self._ground(
            llm, question, history, collection, k, mode, where, rerank, user_id, tenant
        )
        return answer(question, found.passages, llm, **found.options)

    def ask_stream(
        self,
        question: str,
        *,
        collection: str | Sequence[str] = "default",
        k: int | None = None,
        mode: SearchMode = "hybrid",
        where: dict[str, Any] | None = None,
        rerank: bool = False,
        user_id: str | None = None,
        history: Sequence[ChatMessage] = (),
        tenant: str = "default",
    ) -> Iterator[AnswerEvent]:
        """:meth:`ask` as events: ``token`` (``{"text"}``) as the model writes, then
        ``citations`` or ``error``, then ``done`` (see :class:`engram.answers.AnswerEvent`).
        The passages are searched before the first event; a model failure after that is an
        ``error`` event, not an exception."""
        from .answers import stream_answer

        llm = self.llm()
        found = self._ground(
            llm, question, history, collection, k, mode, where, rerank, user_id, tenant
        )
        return stream_answer(question, found.passages, llm, **found.options)

    def _ground(
        self,
        llm: LLM | None,
        question: str,
        history: Sequence[ChatMessage],
        collection: str | Sequence[str],
        k: int | None,
        mode: SearchMode,
        where: dict[str, Any] | None,
        rerank: bool,
        user_id: str | None,
        tenant: str,
    ) -> Grounding:
        from .answers.grounding import Library, ground

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
        )

    def _close_llm(self) -> None:
        with self._lock:
            llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()
