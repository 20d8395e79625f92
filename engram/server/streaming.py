"""A streamed response that stops its producer as soon as the client goes away.

Starlette's ``StreamingResponse`` under ASGI 2.4 servers (uvicorn) keeps pulling from its
iterator after the client disconnected — the server silently drops what is sent — so a
streamed answer kept its connection to the model server open until the model finished.
This response listens for the disconnect while it streams, stops pulling at once, and
closes the iterator, which closes what it holds open (the model's HTTP connection).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    """Streams a (sync) generator of bytes; closes it when done or when the client leaves."""

    def __init__(self, content: Generator[bytes, None, None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._source = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()  # the client went away: stop producing
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(_close, self._source)
        if self.background is not None:
            await self.background()


def _close(generator: Generator[bytes, None, None]) -> None:
    # ValueError: still running in a worker thread; it is then closed when collected.
    with contextlib.suppress(ValueError):
        generator.close()
