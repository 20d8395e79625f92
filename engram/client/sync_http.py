"""The blocking runner of :class:`~engram.Client`: specs (:mod:`.flow`) run on an
``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from .flow import Events, Flow, Op, Pages, R, Request, Sleep, Step, T
from .http import SSEDecoder, Wire, body_of, error_from_response, translate


class Http(Wire[httpx.Client]):
    """An ``httpx.Client`` bound to one server and key, running specs."""

    def run(self, flow: Flow[R]) -> R:
        """Run ``flow`` to its end: its value, or the error it let through."""
        step = Step(flow)
        while step.op is not None:
            try:
                result = self._perform(step.op)
            except BaseException as exc:  # the flow's to catch (a missing file, a 404...)
                step.throw(exc)
            else:
                step.send(result)
        return step.value  # type: ignore[return-value]  # the flow returned it

    def _perform(self, op: Op) -> Any:
        if isinstance(op, Sleep):
            time.sleep(op.seconds)
            return None
        if isinstance(op, Events):
            with self.stream(op.request) as events:
                return list(events)
        with translate(self.url, self.timeout):
            response = self.client.request(op.method, op.url, **op.options())
        return body_of(response)

    def iterate(self, pages: Pages[T]) -> Iterator[T]:
        """The items of ``pages``, a page fetched whenever the last one is used up."""
        while (request := pages.request()) is not None:
            yield from pages.take(self._perform(request))

    def stream(self, request: Request) -> EventStream:
        """Send ``request`` and stream the events of its response; raise for an error
        status before any event."""
        sent = self.client.build_request(request.method, request.url, **request.options())
        with translate(self.url, self.timeout):
            response = self.client.send(sent, stream=True)
            if not response.is_success:
                try:
                    response.read()
                finally:
                    response.close()
                raise error_from_response(response)
        return EventStream(response, self)

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()


class EventStream:
    """The events of a streamed response, as ``(event, data)`` tuples; ``data`` is decoded JSON
    (the raw text when it is not JSON). The connection closes at the last event, or on
    :meth:`close` (or when leaving a ``with`` block) when you stop early."""

    def __init__(self, response: httpx.Response, http: Http) -> None:
        self._response = response
        self._http = http
        self._lines = response.iter_lines()
        self._decoder = SSEDecoder()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> tuple[str, Any]:
        try:
            with translate(self._http.url, self._http.timeout):
                item = self._next_event()
        except BaseException:
            self.close()
            raise
        if item is None:
            self.close()
            raise StopIteration
        return item

    def _next_event(self) -> tuple[str, Any] | None:
        for line in self._lines:
            if (event := self._decoder.feed(line)) is not None:
                return event
        return self._decoder.end()

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._response.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
