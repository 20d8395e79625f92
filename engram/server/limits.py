"""Refuse request bodies over a size limit, before they are read into memory."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import api_error, error_response

# 10 MiB: room for a large upload or a batch of 1,000 documents. Not a setting yet.
MAX_REQUEST_BYTES = 10 * 1024 * 1024


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than the {limit:,}-byte limit"


_HINT = "split the documents into smaller batches or files"


class BodyTooLarge(HTTPException):
    """Raised while the body streams in: FastAPI lets an HTTPException out of body parsing
    (any other exception becomes a 400), so it reaches the error handlers."""

    hint = _HINT

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit))


class RequestSizeLimitMiddleware:
    """413 in the JSON error shape for a body over ``max_bytes``.

    A declared ``Content-Length`` over the limit is refused before anything is read; a body
    without one (chunked) is counted as it streams in and refused once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_REQUEST_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if (
            declared is not None
            and declared.isascii()
            and declared.isdigit()
            and int(declared) > self.max_bytes
        ):
            error = api_error(
                413, "request_too_large", _too_large_message(self.max_bytes), hint=_HINT
            )
            await error_response(error, headers={"Connection": "close"})(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counting_receive, send)
