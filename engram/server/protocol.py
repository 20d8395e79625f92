"""The HTTP protocol ``engram serve`` runs: uvicorn's httptools protocol with time limits
for slow clients.

uvicorn bounds the idle time between requests of a keep-alive connection, but not the time
a client takes to send a request: headers trickled a byte a second, or a body sent slower
than it could be, each hold a connection (and a slot of the server) for as long as the
client likes. Here:

- the request line and headers must arrive within ``ENGRAM_HTTP_HEADER_TIMEOUT`` seconds
  of the connection opening (or of the previous response, on a keep-alive connection);
- the whole body within ``ENGRAM_HTTP_BODY_TIMEOUT`` seconds of the end of the headers.

Past either, the server answers ``408 Request Timeout`` (when no response has started) and
closes the connection. The settings reach every worker process through the environment
(``engram serve`` exports them), read once per process.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_ENV = "ENGRAM_HTTP_HEADER_TIMEOUT"
BODY_TIMEOUT_ENV = "ENGRAM_HTTP_BODY_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 60.0


@functools.cache
def limits() -> tuple[float, float]:
    """(header, body) time limits in seconds, from the environment."""
    return (
        float(os.environ.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT)),
        float(os.environ.get(BODY_TIMEOUT_ENV, DEFAULT_BODY_TIMEOUT)),
    )


class TimedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float, what: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._timed_out, what)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self, what: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            message = f"the request {what} did not arrive in time".encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(message), message)
            )
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app sees the client as gone
            self.cycle.message_event.set()
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(limits()[0], "headers")

    def on_headers_complete(self) -> None:
        self._arm(limits()[1], "body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            # The next request of a keep-alive connection gets its own header limit once it
            # starts; until then uvicorn's keep-alive timeout applies.
            self._disarm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        # A pipelined request parsed while another is answered is not timed: its bytes are
        # already here, and a timer must never cut the response in progress.
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm(limits()[0], "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
