"""An ``engram.AsyncClient`` driven from blocking code, so that the scenarios of
tests/test_client.py run unchanged against both clients (one contract).

Each call's coroutine runs to its end on one event loop owned by the test; an async
iterator becomes an iterator, an :class:`~engram.client.AsyncEventStream` is opened at the
call (as ``Client.chat_stream`` opens its stream) and read a step at a time.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from engram.client import AsyncEventStream

T = TypeVar("T")


class Blocking:
    """``target`` (an ``AsyncClient``, or its ``memory`` or ``state``) with blocking methods."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name in ("memory", "state"):
            return Blocking(value, self._loop)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._result(value(*args, **kwargs))

        return call

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coroutine)

    def _result(self, value: Any) -> Any:
        if isinstance(value, AsyncEventStream):
            return BlockingStream(self._run(value.__aenter__()), self._loop)
        if inspect.iscoroutine(value):
            return self._run(value)
        if isinstance(value, AsyncIterator):
            return self._iterate(value)
        return value

    def _iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        while True:
            try:
                yield self._run(items.__anext__())  # type: ignore[arg-type]
            except StopAsyncIteration:
                return

    def __enter__(self) -> Blocking:
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self._target.aclose())


class BlockingStream(Blocking):
    """An open :class:`~engram.client.AsyncEventStream`, read as an ``EventStream``."""

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self._iterate(self._target)

    def close(self) -> None:
        self._run(self._target.aclose())
