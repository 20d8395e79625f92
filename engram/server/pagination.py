"""Opaque list cursors: base64 of the next offset. Clients pass them back unchanged."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import TypeVar

from ..errors import InvalidInput

T = TypeVar("T")


def encode_cursor(offset: int | None) -> str | None:
    """The cursor for the page starting at ``offset`` (``None``: there is no next page)."""
    if offset is None:
        return None
    return base64.urlsafe_b64encode(str(offset).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset a cursor stands for; raises :class:`InvalidInput` for a forged one."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    if not text.isdigit():
        raise InvalidInput(
            f"invalid cursor {cursor[:40]!r}",
            hint="pass the next_cursor of a previous response unchanged",
        )
    return int(text)


def fetch_page(
    fetch: Callable[[int, int], list[T]], cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """One page of a list route: ``fetch(limit, offset)`` is asked for one row more than the
    page, which tells whether a next page (and so a ``next_cursor``) exists."""
    offset = decode_cursor(cursor) if cursor else 0
    items = fetch(limit + 1, offset)
    return items[:limit], encode_cursor(offset + limit if len(items) > limit else None)
