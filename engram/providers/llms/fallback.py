"""A chain of chat models tried in order: the first that answers wins."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from engram.errors import ConfigError
from engram.providers.llms.base import LLM, ChatMessage, Reply, TokenStream
from engram.providers.llms.errors import LLMError

logger = logging.getLogger("engram.llm")


class FallbackLLM(LLM):
    """Tries each model in turn until one answers.

    A model that raises :class:`~engram.providers.llms.errors.LLMError` (after its own
    retries) hands over to the next. A stream falls back only before its first token: once
    text has been sent on, switching models would splice two different answers, so a later
    failure is raised. When every model fails, the last error's class is raised with every
    model's reason in the message and in ``details["attempts"]``.
    """

    def __init__(self, llms: Sequence[LLM]) -> None:
        if not llms:
            raise ConfigError("a fallback chain needs at least one model")
        self.llms = list(llms)
        self.model_id = " > ".join(llm.model_id for llm in self.llms)

    def reply(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """The first successful reply, with the id of the model that gave it."""
        errors: list[tuple[LLM, LLMError]] = []
        for llm in self.llms:
            try:
                return llm.reply(
                    messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
                )
            except LLMError as exc:
                self._note(llm, exc, errors)
        raise self._exhausted(errors)

    def reply_stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> TokenStream:
        """The first stream that yields a token (or ends cleanly). Unlike a single model's
        stream, this waits for that first token before returning, so a chain where every
        model is down raises here, before anything is sent on."""
        errors: list[tuple[LLM, LLMError]] = []
        for llm in self.llms:
            stream: TokenStream | None = None
            try:
                stream = llm.reply_stream(
                    messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
                )
                first = next(stream)
            except StopIteration:
                assert stream is not None  # next() only runs once the stream exists
                return TokenStream((), stream.model_id)  # an empty but complete reply
            except LLMError as exc:
                if stream is not None:
                    stream.close()
                self._note(llm, exc, errors)
                continue
            return TokenStream(stream, stream.model_id, head=[first])
        raise self._exhausted(errors)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """The text of :meth:`reply`."""
        return self.reply(
            messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
        ).text

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Iterator[str]:
        """The deltas of :meth:`reply_stream` (lazily: nothing is sent before iteration)."""
        # yield from also forwards close() to the TokenStream, releasing its connection.
        yield from self.reply_stream(
            messages, max_tokens=max_tokens, temperature=temperature, timeout=timeout
        )

    def close(self) -> None:
        """Close every model of the chain."""
        for llm in self.llms:
            llm.close()

    @staticmethod
    def _note(llm: LLM, exc: LLMError, errors: list[tuple[LLM, LLMError]]) -> None:
        errors.append((llm, exc))
        logger.warning("%s failed (%s): %s", llm.model_id, exc.code, exc.message)

    @staticmethod
    def _exhausted(errors: list[tuple[LLM, LLMError]]) -> LLMError:
        last = errors[-1][1]
        if len(errors) == 1:
            return last
        reasons = "; ".join(f"{exc.message}" for _, exc in errors)
        error = type(last)(
            f"all {len(errors)} models failed: {reasons}",
            hint=last.hint,
            attempts=[
                {"model": llm.model_id, "code": exc.code, "message": exc.message}
                for llm, exc in errors
            ],
        )
        error.__cause__ = last  # keep the traceback of the last failure, like raise ... from
        return error
