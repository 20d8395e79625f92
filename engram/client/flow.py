"""What a client method does, written once for the sync and the async client.

Each method of :class:`~engram.Client` and :class:`~engram.AsyncClient` is a *spec*: a plain
function with the method's public signature and docstring that does no I/O. It is either

- a *flow*, a generator that yields the operations it needs (:class:`Request`,
  :class:`Sleep`, :class:`Events`) and is sent back their results (or thrown their errors),
  and returns the method's value; a flow can branch, loop and catch, so batching, job
  polling, uploads and per-file failures are written once;
- a :class:`Pages` list, for a method returning a lazy iterator over a paged list;
- a :class:`Request` for a streamed response (``chat_stream``).

One table of methods (:mod:`.clients`) declares each spec once, for both clients
(:mod:`.methods`); a runner performs the operations: ``Client.search`` runs
:func:`engram.client.core.search` with blocking I/O (:mod:`.sync_http`),
``AsyncClient.search`` the same function with ``await`` (:mod:`.async_http`). Only the
runners, a few lines per operation, differ between the two. (The "sans-I/O" pattern of h11
and of the protocol libraries under httpx.)
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")

PAGE = 1000  # the server's longest list page


@dataclass(frozen=True, slots=True)
class Request:
    """Send one request; the flow is sent its decoded JSON body (None when empty)."""

    method: str
    url: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx``'s ``request``/``build_request``."""
        sent = {
            "params": self.params,
            "json": self.json,
            "files": self.files,
            "data": self.data,
            "headers": self.headers,
        }
        return {name: value for name, value in sent.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds`` (``time.sleep`` or ``asyncio.sleep``); the flow is sent None."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Events:
    """Send a request whose answer is a stream of server-sent events and read it to the end;
    the flow is sent the ``(event, data)`` list."""

    request: Request


Op = Request | Sleep | Events
Flow = Generator[Op, Any, R]


def fetch(method: str, url: str, convert: Callable[[Any], R], **options: Any) -> Flow[R]:
    """The flow of a method that is one request: its body, converted."""
    body = yield Request(method, url, **options)
    return convert(body)


class Step(Generic[R]):
    """A flow being run: :attr:`op` is what it asks for next (None once it has returned
    :attr:`value`); a runner answers with :meth:`send` or :meth:`throw`. An error thrown in
    that the flow does not catch comes out of :meth:`throw`."""

    def __init__(self, flow: Flow[R]) -> None:
        self._flow = flow
        self.op: Op | None = None
        self.value: R | None = None
        self.send(None)

    def send(self, result: Any) -> None:
        self._advance(self._flow.send, result)

    def throw(self, error: BaseException) -> None:
        self._advance(self._flow.throw, error)

    def _advance(self, resume: Callable[[Any], Op], argument: Any) -> None:
        try:
            self.op = resume(argument)
        except StopIteration as stop:
            self.op, self.value = None, stop.value


class Pages(Generic[T]):
    """A ``{data, next_cursor}`` list read a page at a time, following cursors, up to
    ``limit`` items (None: all of them). A runner asks :meth:`request` for the next page
    (None when there is none) and hands its body to :meth:`take`."""

    def __init__(
        self,
        url: str,
        params: Mapping[str, Any],
        limit: int | None,
        item: Callable[[Any], T],
        *,
        page_size: int = PAGE,
    ) -> None:
        self.url = url
        self._query = {k: v for k, v in params.items() if v is not None}
        self._left = limit
        self._item = item
        self._page_size = page_size
        self._cursor: str | None = None
        self._done = False

    def request(self) -> Request | None:
        if self._done or (self._left is not None and self._left <= 0):
            return None
        size = self._page_size if self._left is None else min(self._left, self._page_size)
        page = {**self._query, "limit": size}
        if self._cursor:
            page["cursor"] = self._cursor
        return Request("GET", self.url, params=page)

    def take(self, body: Any) -> list[T]:
        items = [self._item(data) for data in body["data"]]
        if self._left is not None:
            self._left -= len(items)
        self._cursor = body.get("next_cursor")
        self._done = not self._cursor
        return items


def collect(pages: Pages[T]) -> Flow[list[T]]:
    """The flow that reads every page of ``pages``: their items, in order."""
    items: list[T] = []
    while (request := pages.request()) is not None:
        items.extend(pages.take((yield request)))
    return items
