"""LLM errors, and the one boundary where httpx failures become them.

::

    EngramError
    └── LLMError (502, "llm_error")                   the model server refused or garbled a reply
        └── LLMUnavailable (503, "llm_unavailable")   unreachable, timed out, overloaded (5xx/429)

Every message passes through :func:`redact`, so an API key echoed by a server (or present in a
URL) never reaches a log line, an HTTP error body or an SSE ``error`` event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engram.errors import EngramError

if TYPE_CHECKING:  # httpx is imported only by the HTTP providers, never by this package
    import httpx

_BODY_EXCERPT = 300  # enough for an upstream error message, not a whole HTML error page


class LLMError(EngramError):
    """The language model failed: a refused request (4xx), a malformed reply, a broken stream."""

    status, code = 502, "llm_error"


class LLMUnavailable(LLMError):
    """No usable reply could be obtained: unreachable, timed out, overloaded (5xx/429)."""

    status, code = 503, "llm_unavailable"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _clean(error: LLMError, secrets: Iterable[str | None]) -> LLMError:
    secrets = list(secrets)
    error.message = redact(error.message, secrets)
    error.args = (error.message,)
    if error.hint:
        error.hint = redact(error.hint, secrets)
    error.details = {
        k: redact(v, secrets) if isinstance(v, str) else v for k, v in error.details.items()
    }
    return error


def translate(
    exc: httpx.HTTPError, *, where: str, timeout: float, secrets: Iterable[str | None] = ()
) -> LLMError:
    """The engram error for an httpx exception raised while talking to ``where``.

    Raise the result ``from exc`` so the original stays available to debuggers; the message
    is redacted, the chained httpx exception never carries the key (it is only in headers).
    """
    import httpx

    reason = str(exc) or type(exc).__name__
    error: LLMError
    if isinstance(exc, httpx.TimeoutException):
        phase = type(exc).__name__.removesuffix("Timeout").lower() or "request"
        error = LLMUnavailable(
            f"{where} timed out ({phase}, after {timeout:g}s)",
            hint="the model server is slow or stalled; raise the LLM timeout or add a "
            "fallback model",
        )
    elif isinstance(exc, httpx.ConnectError):
        error = LLMUnavailable(
            f"cannot connect to {where}: {reason}",
            hint="is the model server running, and is the base URL right?",
        )
    elif isinstance(exc, httpx.UnsupportedProtocol):
        error = LLMError(
            f"bad base URL for {where}: {reason}", hint="use an http:// or https:// URL"
        )
    elif isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError)):
        # Includes a connection dropped in the middle of a streamed reply.
        error = LLMUnavailable(
            f"connection to {where} failed: {reason}",
            hint="the model server closed the connection; check its logs",
        )
    else:
        error = LLMError(f"request to {where} failed: {reason}")
    return _clean(error, secrets)


def status_error(
    response: httpx.Response, *, where: str, secrets: Iterable[str | None] = ()
) -> LLMError:
    """The engram error for an HTTP error status; the response body must have been read."""
    status = response.status_code
    detail = _upstream_message(response)
    message = f"{where} answered HTTP {status}" + (f": {detail}" if detail else "")
    error: LLMError
    if status == 429 or status >= 500:
        hint = (
            "rate limited by the provider; retry later or add a fallback model"
            if status == 429
            else "the model server failed; check its logs or add a fallback model"
        )
        error = LLMUnavailable(message, hint=hint, upstream_status=status)
    else:
        hints = {
            401: "check the API key for this endpoint",
            403: "check the API key and its permissions for this model",
            404: "check the model name and the base URL (OpenAI-compatible URLs usually end "
            "in /v1; for Ollama, pull the model first: ollama pull MODEL)",
        }
        error = LLMError(message, hint=hints.get(status), upstream_status=status)
    return _clean(error, secrets)


def _upstream_message(response: httpx.Response) -> str:
    """The provider's own error text: ``error.message`` (OpenAI), ``error`` (Ollama), or the
    start of the body."""
    try:
        body: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text.strip()[:_BODY_EXCERPT]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str):
        return error[:_BODY_EXCERPT]
    return json.dumps(body)[:_BODY_EXCERPT]


def protocol_error(
    message: str, *, where: str, secrets: Iterable[str | None] = (), unavailable: bool = False
) -> LLMError:
    """An error for a reply that does not follow the wire protocol (bad JSON, missing fields,
    a stream cut before its end marker)."""
    cls = LLMUnavailable if unavailable else LLMError
    return _clean(cls(f"{where}: {message}"), secrets)
