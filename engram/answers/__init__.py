"""Answers grounded in retrieved passages: the prompt, citations, whole and streamed answers
from a language model, and an extractive answer when none is configured."""

from engram.answers.citations import Citation, citations_for, cited_numbers
from engram.answers.extractive import (
    EXTRACTIVE_NOT_FOUND,
    EXTRACTIVE_PREFIX,
    RELEVANCE_THRESHOLD,
    extractive_answer,
)
from engram.answers.generate import (
    Answer,
    AnswerEvent,
    AnswerOptions,
    EventType,
    answer,
    stream_answer,
)
from engram.answers.prompt import (
    DEFAULT_MAX_CONTEXT_CHARS,
    DEFAULT_TEMPLATE,
    build_prompt,
    select_passages,
)
from engram.answers.sse import sse_format

__all__ = [
    "DEFAULT_MAX_CONTEXT_CHARS",
    "DEFAULT_TEMPLATE",
    "EXTRACTIVE_NOT_FOUND",
    "EXTRACTIVE_PREFIX",
    "RELEVANCE_THRESHOLD",
    "Answer",
    "AnswerEvent",
    "AnswerOptions",
    "Citation",
    "EventType",
    "answer",
    "build_prompt",
    "citations_for",
    "cited_numbers",
    "extractive_answer",
    "select_passages",
    "sse_format",
    "stream_answer",
]
