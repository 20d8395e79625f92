"""The one JSON error shape of the HTTP API, for every failure.

Every error response, whatever raised it, has the body of :meth:`EngramError.to_dict`::

    {"error": {"code": "collection_not_found", "message": "...", "hint": "...", "details": {...}}}

with the error's HTTP status. Sources, and the code each gets:

- :class:`~engram.errors.EngramError` raised by the library: its own ``status`` and ``code``.
- a request that fails validation (:class:`RequestValidationError`): 422 ``invalid_request``,
  ``details.errors`` lists each problem (``loc``, ``msg``, ``type``).
- Starlette/FastAPI :class:`HTTPException` (unknown route, wrong method, body too large):
  a code derived from the status (404 ``not_found``, 405 ``method_not_allowed``, ...).
- anything else: 500 ``internal`` with the message ``internal error``; the traceback is
  logged, never sent.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import EngramError, RateLimited, Unauthorized

logger = logging.getLogger("engram.server")

# Codes of statuses that Starlette raises itself; others derive from the status phrase.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def code_for_status(status: int) -> str:
    """A stable machine name for an HTTP status: ``404`` → ``"not_found"``."""
    if status in _CODES:
        return _CODES[status]
    return re.sub(r"[^a-z0-9]+", "_", _phrase(status).lower()).strip("_")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


def api_error(
    status: int, code: str, message: str, *, hint: str | None = None, **details: Any
) -> EngramError:
    """An :class:`EngramError` with an explicit status and code, for failures that belong to
    the HTTP layer rather than to the library (a bad route, a server that is not ready)."""
    error = EngramError(message, hint=hint, **details)
    error.status, error.code = status, code
    return error


class _ErrorJSON(JSONResponse):
    """JSON that always encodes: an error may quote input holding text UTF-8 cannot encode
    (a lone surrogate), which is then sent escaped (``\\ud800``) instead of failing."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def error_response(error: EngramError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON response for ``error``: its ``to_dict()`` body with its ``status``."""
    return _ErrorJSON(error.to_dict(), status_code=error.status, headers=headers)


def internal_error() -> EngramError:
    """The error sent for an unexpected exception: it says nothing about the cause."""
    return api_error(
        500, "internal", "internal error", hint="the server logged the details; retry later"
    )


async def _engram_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EngramError)
    if exc.status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return engram_error_response(exc)


def engram_error_response(exc: EngramError) -> JSONResponse:
    """The response for an engram error, with the headers its status calls for
    (``Retry-After`` for 429, ``WWW-Authenticate`` for 401)."""
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="engram"'
    return error_response(exc, headers=headers or None)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_clean_error(e) for e in exc.errors()]
    content_type = request.headers.get("content-type", "")
    body_not_json = any(e["loc"] == ["body"] for e in errors) and "json" not in content_type
    if body_not_json and "multipart/form-data" not in content_type:
        # curl -d sends application/x-www-form-urlencoded unless told otherwise
        error = api_error(
            422,
            "invalid_request",
            f"the body must be JSON, sent with Content-Type: application/json"
            f" (got {content_type or 'no Content-Type'})",
            hint="with curl: -H 'content-type: application/json'",
            errors=errors,
        )
        return error_response(error)
    hint = "details.errors lists every problem; the request schemas are at /docs"
    return error_response(invalid_request(exc.errors(), hint=hint))


def invalid_request(problems: Sequence[Mapping[str, Any]], *, hint: str) -> EngramError:
    """The 422 ``invalid_request`` error for pydantic's ``problems`` with a request: the
    first named in the message, every one in ``details.errors`` (shared with the MCP tools,
    whose arguments are validated as request bodies are)."""
    errors = [_clean_error(e) for e in problems]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more)"
    return api_error(422, "invalid_request", message, hint=hint, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    details: dict[str, Any] = {}
    hint: str | None = getattr(exc, "hint", None)
    if status == 404 and exc.detail == "Not Found":
        message = f"no route {request.method} {request.url.path}"
        hint = "every API route is under /v1; see /docs"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        allow = (exc.headers or {}).get("Allow")
        hint = f"allowed methods: {allow}" if allow else None
    elif isinstance(exc.detail, str):
        message = exc.detail
    else:
        message = _phrase(status)
        details["detail"] = _json_safe(exc.detail)
    error = api_error(status, code_for_status(status), message, hint=hint, **details)
    return error_response(error, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # Backstop for errors raised outside UnexpectedErrorMiddleware (in another middleware).
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(internal_error())


class UnexpectedErrorMiddleware:
    """Turns an unexpected exception into the 500 error shape and logs its traceback once.

    Starlette's own handler for ``Exception`` re-raises after responding (so the server logs
    the traceback a second time); this middleware sits just inside it and does not.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:  # too late for a JSON body: let the server drop the connection
                raise
            await error_response(internal_error())(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error response the one shape."""
    app.add_exception_handler(EngramError, _engram_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _clean_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """A pydantic error made JSON-safe; the offending input is echoed only when it is a
    short scalar (never a whole body or a long text)."""
    out: dict[str, Any] = {
        "loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "")),
    }
    value = error.get("input")
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 200):
        out["input"] = value
    if error.get("ctx"):
        out["ctx"] = _json_safe(error["ctx"])
    return out


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [_json_safe(v) for v in value]
    return str(value)
