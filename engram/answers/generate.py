"""Answers: a language model's reply grounded in numbered passages, whole or streamed, or an
extractive answer when no model is configured."""

from __future__ import annotations

import logging
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, Unpack

from engram.answers.citations import Citation, citations_for, cited_numbers
from engram.answers.extractive import extractive_answer
from engram.answers.prompt import DEFAULT_MAX_CONTEXT_CHARS, build_prompt, select_passages
from engram.errors import EngramError
from engram.providers.llms.base import LLM, ChatMessage, TokenStream
from engram.types import SearchResult

logger = logging.getLogger("engram.answers")

EventType = Literal["token", "citations", "error", "done"]


@dataclass(slots=True)
class Answer:
    """An answer and the passages it cites. ``model`` is the id of the model that wrote it
    (None when ``extractive``: quoted from the passages, no model involved)."""

    text: str
    citations: list[Citation] = field(default_factory=list)
    model: str | None = None
    extractive: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """The answer :meth:`to_dict` wrote (``POST /v1/chat``'s body)."""
        return cls(
            str(data["text"]),
            [Citation.from_dict(c) for c in data.get("citations", [])],
            data.get("model"),
            bool(data.get("extractive")),
        )

    def to_dict(self) -> dict[str, Any]:
        """``{text, citations: [...], model, extractive}``."""
        return {
            "text": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "model": self.model,
            "extractive": self.extractive,
        }


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    """One event of a streamed answer, in this order: any number of ``token``
    (``{"text": delta}``), then ``citations`` (``{"citations": [...]}``) or ``error``
    (``{"code", "message", "hint"?}``), then always ``done``
    (``{"model", "extractive", "ok"}``)."""

    type: EventType
    data: dict[str, Any]


class ModelLimits(TypedDict, total=False):
    """Limits of the model call (a key left out, or None: the provider's default)."""

    max_tokens: int | None
    temperature: float | None
    timeout: float | None


class AnswerOptions(ModelLimits, total=False):
    """How to answer, the same for a whole and a streamed answer; every key may be left out.

    ``history``: the earlier turns of the conversation; ``memories``: what is known of the
    user; ``template``: the system prompt (None: the built-in one); ``language``: the
    collection's, for an extractive answer's analysis and wording (``"en"``, ``"fr"`` or
    ``"auto"``; default ``"en"``);
    ``max_context_chars``: how much passage text the prompt holds (default
    ``DEFAULT_MAX_CONTEXT_CHARS``); and the :class:`ModelLimits`. One record, so that
    :func:`answer` and :func:`stream_answer` name the options once, callers still pass them
    by keyword, and the type checker still checks those keywords.
    """

    history: Sequence[ChatMessage]
    memories: Sequence[str]
    template: str | None
    language: str
    max_context_chars: int


def answer(
    question: str,
    passages: Sequence[SearchResult],
    llm: LLM | None,
    **options: Unpack[AnswerOptions],
) -> Answer:
    """Answer ``question`` from ``passages`` (best first) with ``llm``, or extractively when
    ``llm`` is None. Citations are the passages the text cites by number, or all passages in
    the prompt when it cites none. Raises ``LLMError``/``LLMUnavailable`` when the model fails,
    InvalidInput/ConfigError for a bad question, history or template."""
    used = _used(passages, options)
    if llm is None:
        return _extractive(question, used, options)
    reply = llm.reply(_messages(question, used, options), **_limits(options))
    return Answer(reply.text, citations_for(reply.text, used), reply.model_id, extractive=False)


def stream_answer(
    question: str,
    passages: Sequence[SearchResult],
    llm: LLM | None,
    **options: Unpack[AnswerOptions],
) -> Generator[AnswerEvent, None, None]:
    """:func:`answer` as a stream of :class:`AnswerEvent`.

    A bad question, history or template raises here, before any event, so a server can still
    answer with an error status; the model is contacted only when iteration starts. From
    then on nothing raises: a failure becomes an ``error`` event followed by ``done``, and
    every wait is bounded by ``timeout``, so the stream always ends. Closing the iterator
    early (a client went away) closes the model's connection.
    """
    used = _used(passages, options)
    if llm is None:
        return _extractive_events(_extractive(question, used, options))
    messages = _messages(question, used, options)
    return _model_events(llm, messages, used, _limits(options))


def _used(passages: Sequence[SearchResult], options: AnswerOptions) -> list[SearchResult]:
    return select_passages(passages, options.get("max_context_chars", DEFAULT_MAX_CONTEXT_CHARS))


def _messages(question: str, used: list[SearchResult], options: AnswerOptions) -> list[ChatMessage]:
    history, memories = options.get("history", ()), options.get("memories", ())
    return build_prompt(question, used, history, memories, options.get("template"))


def _limits(options: AnswerOptions) -> ModelLimits:
    return {
        "max_tokens": options.get("max_tokens"),
        "temperature": options.get("temperature"),
        "timeout": options.get("timeout"),
    }


def _extractive(question: str, used: list[SearchResult], options: AnswerOptions) -> Answer:
    text = extractive_answer(question, used, language=options.get("language", "en"))
    # Exactly the passages quoted: none when nothing was relevant enough to quote.
    citations = [Citation.of(n, used[n - 1]) for n in cited_numbers(text, len(used))]
    return Answer(text, citations, None, extractive=True)


def _extractive_events(result: Answer) -> Generator[AnswerEvent, None, None]:
    yield AnswerEvent("token", {"text": result.text})
    yield AnswerEvent("citations", {"citations": [c.to_dict() for c in result.citations]})
    yield _done(None, extractive=True, ok=True)


def _model_events(
    llm: LLM, messages: list[ChatMessage], used: list[SearchResult], limits: ModelLimits
) -> Generator[AnswerEvent, None, None]:
    stream: TokenStream | None = None
    parts: list[str] = []
    try:
        stream = llm.reply_stream(messages, **limits)
        for delta in stream:
            parts.append(delta)
            yield AnswerEvent("token", {"text": delta})
    except EngramError as exc:
        yield AnswerEvent("error", exc.to_dict()["error"])
        yield _done(stream.model_id if stream else None, extractive=False, ok=False)
        return
    except Exception:
        # A bug must still end the stream cleanly; its details go to the log, not the client.
        logger.exception("streaming an answer failed")
        yield AnswerEvent("error", EngramError("internal error").to_dict()["error"])
        yield _done(stream.model_id if stream else None, extractive=False, ok=False)
        return
    finally:
        if stream is not None:
            stream.close()
    citations = citations_for("".join(parts), used)
    yield AnswerEvent("citations", {"citations": [c.to_dict() for c in citations]})
    yield _done(stream.model_id, extractive=False, ok=True)


def _done(model: str | None, *, extractive: bool, ok: bool) -> AnswerEvent:
    return AnswerEvent("done", {"model": model, "extractive": extractive, "ok": ok})
