"""Input checks of the memory API: every bad argument becomes an :class:`InvalidInput` that
names the argument, before anything is embedded or written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from ..errors import InvalidInput, QueryTooLong
from .types import ROLES, MessageWrite, Role

MAX_CONTENT_CHARS = 10_000  # longest memory or message; longer text belongs in a document
MAX_ID_CHARS = 256  # tenant, user_id, agent_id, source
MAX_TITLE_CHARS = 1_000
MAX_K = 1_000  # most hits one memory search returns
MAX_LIMIT = 1_000  # longest page of a list


def content(value: object, what: str = "content") -> str:
    """Non-blank text of at most MAX_CONTENT_CHARS characters, returned unchanged."""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInput(f"{what} is empty", hint="pass some text")
    if len(value) > MAX_CONTENT_CHARS:
        raise InvalidInput(
            f"{what} has {len(value):,} characters; the limit is {MAX_CONTENT_CHARS:,}",
            hint="split it, or ingest long text as a document instead",
        )
    return value


def query(value: object, max_chars: int) -> str:
    """A non-blank query of at most ``max_chars`` characters, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("the query is empty", hint="pass some words to search for")
    text = value.strip()
    if len(text) > max_chars:
        raise QueryTooLong(
            f"the query has {len(text):,} characters; the limit is {max_chars:,}",
            hint="shorten it, or raise ENGRAM_MAX_QUERY_CHARS",
        )
    return text


def ident(value: object, what: str) -> str:
    """A non-blank identifier (tenant, user id, agent id, source) of bounded length."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} must be a non-empty string, not {value!r}")
    if len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"{what} is longer than {MAX_ID_CHARS} characters")
    return value


def optional_ident(value: object, what: str) -> str | None:
    """None, or what :func:`ident` accepts."""
    return None if value is None else ident(value, what)


def title(value: object) -> str | None:
    """None or a string of at most MAX_TITLE_CHARS characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"title must be a string, not {type(value).__name__}")
    if len(value) > MAX_TITLE_CHARS:
        raise InvalidInput(f"title is longer than {MAX_TITLE_CHARS:,} characters")
    return value


def metadata(value: object) -> dict[str, Any]:
    """A JSON-serialisable dict with string keys (None becomes {})."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidInput("metadata must be a JSON object (a dict with string keys)")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata is not JSON-serialisable: {exc}") from exc
    return dict(value)


def role(value: object) -> Role:
    """One of ROLES."""
    if value not in ROLES:
        raise InvalidInput(f"unknown role {value!r}", hint=f"use one of: {', '.join(ROLES)}")
    return cast(Role, value)


def bounded(value: object, what: str, low: int, high: int) -> int:
    """An int in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{what} must be an integer between {low} and {high}, not {value!r}")
    return value


def timestamp(value: object, what: str) -> datetime:
    """An aware UTC datetime from a datetime or an ISO 8601 string (UTC when it has no
    offset)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(
                f"{what} is not an ISO 8601 time: {value!r}",
                hint="write it like 2026-03-05T18:30:00+01:00 (UTC when the offset is left out)",
            ) from None
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be an ISO 8601 time, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


MESSAGE_FIELDS = ("role", "content", "metadata", "speaker", "created_at")


def message(value: object) -> MessageWrite:
    """A message to append, from ``{"role", "content", "metadata"?, "speaker"?,
    "created_at"?}``."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"a message must be an object, not {type(value).__name__}")
    unknown = sorted(set(value) - set(MESSAGE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown message field(s): {', '.join(map(str, unknown))}",
            hint=f"a message has {', '.join(MESSAGE_FIELDS)}",
        )
    said = value.get("created_at")
    return MessageWrite(
        role=role(value.get("role")),
        content=content(value.get("content")),
        metadata=metadata(value.get("metadata")),
        speaker=optional_ident(value.get("speaker"), "speaker"),
        created_at=None if said is None else timestamp(said, "created_at"),
    )
