"""The one boundary where a database driver's exceptions become engram errors (one error
hierarchy, one JSON error shape): each backend says how to read its driver's exceptions,
this says how they are raised."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from ..errors import EngramError


@contextlib.contextmanager
def translating(read: Callable[[Exception], EngramError | None]) -> Iterator[None]:
    """Raise ``read(exc)`` (chained to the driver's exception) for what the block raises;
    engram errors, and anything ``read`` does not know (None), pass through unchanged."""
    try:
        yield
    except EngramError:
        raise
    except Exception as exc:
        error = read(exc)
        if error is None:
            raise
        raise error from exc
