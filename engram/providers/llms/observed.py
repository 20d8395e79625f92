"""Watching chat models: every call of every link of a chain reported to an observer
(requests, outcome, duration, output size), and answers a fallback model gave.

The observer is anything with the two methods of :class:`LLMObserver` — the server's
Prometheus metrics — so providers never import a metrics library.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import Any, Protocol

from engram.providers.llms.base import LLM, ChatMessage, Reply, TokenStream
from engram.providers.llms.errors import LLMError, LLMUnavailable
from engram.providers.llms.fallback import FallbackLLM


class LLMObserver(Protocol):
    def llm_call(
        self, model: str, outcome: str, seconds: float, *, deltas: int, chars: int
    ) -> None:
        """One call to ``model`` ended: ``outcome`` is ok, error (refused or garbled),
        unavailable (unreachable, timed out, overloaded) or cancelled (a stream closed
        early); ``deltas`` counts the text pieces of a streamed reply."""

    def llm_fallback(self, model: str) -> None:
        """An answer came from ``model``, not from the chain's first model."""


def _outcome(exc: BaseException) -> str:
    if isinstance(exc, LLMUnavailable):
        return "unavailable"
    if isinstance(exc, LLMError):
        return "error"
    return "cancelled" if isinstance(exc, GeneratorExit) else "error"


class ObservedLLM(LLM):
    """One model whose calls are reported to ``observer``."""

    def __init__(self, inner: LLM, observer: LLMObserver) -> None:
        self.inner = inner
        self.observer = observer
        self.model_id = inner.model_id

    def complete(self, messages: Sequence[ChatMessage], **options: Any) -> str:
        started = time.monotonic()
        try:
            text = self.inner.complete(messages, **options)
        except BaseException as exc:
            self.observer.llm_call(
                self.model_id, _outcome(exc), time.monotonic() - started, deltas=0, chars=0
            )
            raise
        self.observer.llm_call(
            self.model_id, "ok", time.monotonic() - started, deltas=0, chars=len(text)
        )
        return text

    def stream(self, messages: Sequence[ChatMessage], **options: Any) -> Iterator[str]:
        started = time.monotonic()
        deltas = chars = 0
        outcome = "ok"
        try:
            with closing(iter(self.inner.stream(messages, **options))) as tokens:  # type: ignore[type-var]
                for delta in tokens:
                    deltas += 1
                    chars += len(delta)
                    yield delta
        except BaseException as exc:
            outcome = _outcome(exc)
            raise
        finally:
            self.observer.llm_call(
                self.model_id, outcome, time.monotonic() - started, deltas=deltas, chars=chars
            )

    def close(self) -> None:
        self.inner.close()


class ObservedChain(LLM):
    """A model or a fallback chain, each link observed, answers from a fallback counted."""

    def __init__(self, llm: LLM, observer: LLMObserver) -> None:
        self.observer = observer
        links = llm.llms if isinstance(llm, FallbackLLM) else [llm]
        observed = [ObservedLLM(link, observer) for link in links]
        self.inner: LLM = FallbackLLM(observed) if isinstance(llm, FallbackLLM) else observed[0]
        self.primary = links[0].model_id
        self.model_id = llm.model_id

    def _answered(self, model_id: str) -> None:
        if model_id != self.primary:
            self.observer.llm_fallback(model_id)

    def complete(self, messages: Sequence[ChatMessage], **options: Any) -> str:
        return self.reply(messages, **options).text

    def stream(self, messages: Sequence[ChatMessage], **options: Any) -> Iterator[str]:
        return self.reply_stream(messages, **options)

    def reply(self, messages: Sequence[ChatMessage], **options: Any) -> Reply:
        reply = self.inner.reply(messages, **options)
        self._answered(reply.model_id)
        return reply

    def reply_stream(self, messages: Sequence[ChatMessage], **options: Any) -> TokenStream:
        stream = self.inner.reply_stream(messages, **options)
        self._answered(stream.model_id)
        return stream

    def close(self) -> None:
        self.inner.close()
