"""The asyncio runner of :class:`~engram.AsyncClient`: specs (:mod:`.flow`) run on an
``httpx.AsyncClient``. It mirrors :mod:`.sync_http` operation for operation, with ``await``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any

import httpx

from .flow import Events, Flow, Op, Pages, R, Request, Sleep, Step, T
from .http import SSEDecoder, Wire, body_of, error_from_response, translate


class AsyncHttp(Wire[httpx.AsyncClient]):
    """An ``httpx.AsyncClient`` bound to one server and key, running specs."""

    async def run(self, flow: Flow[R]) -> R:
        """Run ``flow`` to its end: its value, or the error it let through."""
        step = Step(flow)
        while step.op is not None:
            try:
                result = await self._perform(step.op)
            except BaseException as exc:  # the flow's to catch; cancellation closes it
                step.throw(exc)
            else:
                step.send(result)
        return step.value  # type: ignore[return-value]  # the flow returned it

    async def _perform(self, op: Op) -> Any:
        if isinstance(op, Sleep):
            await asyncio.sleep(op.seconds)
            return None
        if isinstance(op, Events):
            async with self.stream(op.request) as events:
                return [event async for event in events]
        with translate(self.url, self.timeout):
            response = await self.client.request(op.method, op.url, **op.options())
        return body_of(response)

    async def iterate(self, pages: Pages[T]) -> AsyncIterator[T]:
        """The items of ``pages``, a page fetched whenever the last one is used up."""
        while (request := pages.request()) is not None:
            for item in pages.take(await self._perform(request)):
                yield item

    def stream(self, request: Request) -> AsyncEventStream:
        """The events of ``request``'s response; sent when first awaited or iterated."""
        return AsyncEventStream(self, request)

    async def open(self, request: Request) -> httpx.Response:
        """Send ``request`` and return its response unread; raise for an error status."""
        sent = self.client.build_request(request.method, request.url, **request.options())
        with translate(self.url, self.timeout):
            response = await self.client.send(sent, stream=True)
            if not response.is_success:
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                raise error_from_response(response)
        return response

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


class AsyncEventStream:
    """The events of a streamed response, as ``(event, data)`` tuples (see
    :class:`~engram.client.EventStream`). The request is sent when the stream is first
    awaited (``events = await client.chat_stream(...)``: a bad request raises there), entered
    (``async with``) or iterated (``async for``). The connection closes at the last event, or
    on :meth:`aclose` (or when leaving ``async with``) when you stop early."""

    def __init__(self, http: AsyncHttp, request: Request) -> None:
        self._http = http
        self._request = request
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._decoder = SSEDecoder()

    async def _open(self) -> AsyncEventStream:
        if self._response is None:
            self._response = await self._http.open(self._request)
            self._lines = self._response.aiter_lines()
        return self

    def __await__(self) -> Generator[Any, None, AsyncEventStream]:
        return self._open().__await__()

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> tuple[str, Any]:
        await self._open()
        try:
            with translate(self._http.url, self._http.timeout):
                item = await self._next_event()
        except BaseException:
            await self.aclose()
            raise
        if item is None:
            await self.aclose()
            raise StopAsyncIteration
        return item

    async def _next_event(self) -> tuple[str, Any] | None:
        assert self._lines is not None  # opened
        async for line in self._lines:
            if (event := self._decoder.feed(line)) is not None:
                return event
        return self._decoder.end()

    async def aclose(self) -> None:
        """Stop reading and close the connection."""
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return await self._open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
