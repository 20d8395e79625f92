"""The wire layer of both clients, sync and async: what does no I/O of its own.

Two translations happen here and nowhere else: an ``httpx`` network error becomes
:class:`~engram.errors.ServerUnavailable` (:func:`translate`), and an error response of the
server becomes the library's own exception class, found by its ``code``
(:func:`error_from_body`). Also here: URL paths, the client's headers, the reading of a
response body (:func:`body_of`) and of server-sent events (:class:`SSEDecoder`); the
``httpx`` calls themselves are in :mod:`.sync_http` and :mod:`.async_http`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from ..errors import (
    ERRORS_BY_CODE,
    ConfigError,
    Conflict,
    EngramError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    ServerUnavailable,
    Unauthorized,
    VersionConflict,
)

C = TypeVar("C", httpx.Client, httpx.AsyncClient)


class Wire(Generic[C]):
    """What the two runners (:mod:`.sync_http`, :mod:`.async_http`) share: their ``httpx``
    client, and the server's URL and the timeout that messages name."""

    def __init__(self, client: C) -> None:
        self.client: C = client
        self.url = str(client.base_url).rstrip("/")
        self.timeout = client.timeout.read  # the timeout=30 it was given


# The class raised for an error whose code this client does not know (a newer server, or a
# proxy in front of it), by HTTP status.
_BY_STATUS: dict[int, type[EngramError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: VersionConflict,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    429: RateLimited,
    502: ServerUnavailable,
    503: ServerUnavailable,
    504: ServerUnavailable,
}


def error_from_body(
    status: int, body: Any, *, retry_after: str | None = None, fallback: str = ""
) -> EngramError:
    """The exception for an error ``body`` (``{"error": {"code", "message", ...}}``) sent with
    ``status``: the library class its code names, else the base class for the status.

    ``fallback`` is the message when the body does not have the error shape.
    """
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        error = {}
    code = str(error.get("code") or "")
    message = str(error.get("message") or fallback or f"HTTP {status}")
    hint = error.get("hint")
    details = error.get("details")
    details = dict(details) if isinstance(details, Mapping) else {}
    cls = ERRORS_BY_CODE.get(code) or _BY_STATUS.get(status, EngramError)
    exc: EngramError
    if issubclass(cls, RateLimited):
        exc = cls(message, retry_after=_seconds(details.get("retry_after", retry_after)))
    else:
        exc = cls(message)
    exc.hint = str(hint) if hint else None
    exc.details = details
    if code and code != cls.code or status != cls.status:
        # A code the client does not know: keep what the server said (as api_error does).
        exc.status, exc.code = status, code or cls.code
    return exc


def error_from_response(response: httpx.Response) -> EngramError:
    """The exception for a non-2xx ``response`` (read), whatever its body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    text = " ".join(response.text.split())[:200]
    request = response.request
    fallback = f"HTTP {response.status_code} from {request.method} {request.url}" + (
        f": {text}" if text else ""
    )
    return error_from_body(
        response.status_code,
        body,
        retry_after=response.headers.get("retry-after"),
        fallback=fallback,
    )


def _seconds(value: Any) -> int:
    try:
        return max(0, int(float(value)))
    except (TypeError, ValueError):
        return 1


@contextmanager
def translate(url: str, timeout: float | None) -> Iterator[None]:
    """The one boundary where ``httpx`` errors become :class:`ServerUnavailable`."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ServerUnavailable(
            f"the engram server at {url} did not answer within {timeout} s",
            hint="it may be overloaded; retry, or pass a larger timeout= to the client",
            url=url,
        ) from exc
    except httpx.ConnectError as exc:
        raise ServerUnavailable(
            f"cannot connect to the engram server at {url}: {exc}",
            hint="is `engram serve` running there? check the URL and port",
            url=url,
        ) from exc
    except httpx.RequestError as exc:
        raise ServerUnavailable(
            f"the request to the engram server at {url} failed: {exc or type(exc).__name__}",
            hint="the connection was dropped; retry",
            url=url,
        ) from exc


def path(*segments: str, key: str | None = None) -> str:
    """The URL path ``/v1/<segments...>[/<key>]``, percent-encoded. A ``/`` inside a segment
    is encoded (an id is one segment); inside ``key`` (a document key such as
    ``guides/setup.md``) it stays a separator, as the server's key routes expect."""
    parts = [_segment(s) for s in segments]
    if key is not None:
        parts.extend(_segment(part) for part in key.split("/"))
    return "/v1/" + "/".join(parts)


def _segment(text: str) -> str:
    # httpx resolves literal dot segments; encoded, they reach the server as names.
    return {".": "%2E", "..": "%2E%2E"}.get(text) or quote(text, safe="")


class SSEDecoder:
    """Server-sent events from the lines of a ``text/event-stream`` body, fed one at a time
    (sync and async readers feed it alike): :meth:`feed` returns the event a line completes."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> tuple[str, Any] | None:
        """Read one line; the ``(event, data)`` it completes (a blank line), else None."""
        if not line:
            return self.end()
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def end(self) -> tuple[str, Any] | None:
        """The pending event, if any: at a blank line, or at the end of the body (a last event
        without its blank line: the server closed early, keep it)."""
        event, data = self._event, self._data
        self._event, self._data = "", []
        return (event or "message", _decode("\n".join(data))) if data else None


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """Server-sent events from the lines of a ``text/event-stream`` body."""
    decoder = SSEDecoder()
    for line in lines:
        if (event := decoder.feed(line)) is not None:
            yield event
    if (event := decoder.end()) is not None:
        yield event


def body_of(response: httpx.Response) -> Any:
    """The decoded JSON body of a read ``response`` (None for an empty one); raise the
    library's exception for an error status."""
    if not response.is_success:
        raise error_from_response(response)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError as exc:
        request = response.request
        raise EngramError(
            f"{request.method} {request.url} answered {response.status_code} with a body that "
            "is not JSON",
            hint="is the URL that of an engram server (not a proxy's page)?",
        ) from exc


def base_url(url: str) -> str:
    """``url`` checked as a server's base URL, without its trailing ``/``."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"invalid server URL {url!r}: {exc}", hint=_URL_HINT) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"invalid server URL {url!r}", hint=_URL_HINT)
    return url.rstrip("/")


_URL_HINT = "pass the server's base URL, e.g. engram.Client('http://127.0.0.1:8000')"


def options(url: str, api_key: str | None, timeout: float | None, transport: Any) -> dict[str, Any]:
    """The arguments of the ``httpx`` client (sync or async) of a client of ``url``: the
    headers of every request say who is calling, with which key."""
    headers = {"User-Agent": f"engram-client/{_version()}", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return {"base_url": url, "headers": headers, "timeout": timeout, "transport": transport}


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _version() -> str:
    try:
        return version("engram")
    except PackageNotFoundError:
        return "0+unknown"
