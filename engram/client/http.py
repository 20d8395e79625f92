"""The wire layer of the client: requests, the error boundary, server-sent events.

Two translations happen here and nowhere else: an ``httpx`` network error becomes
:class:`~engram.errors.ServerUnavailable` (:func:`translate`), and an error response of the
server becomes the library's own exception class, found by its ``code``
(:func:`error_from_body`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

import httpx

from ..errors import (
    ERRORS_BY_CODE,
    Conflict,
    EngramError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    ServerUnavailable,
    Unauthorized,
)

PAGE = 1000  # the server's longest list page

# The class raised for an error whose code this client does not know (a newer server, or a
# proxy in front of it), by HTTP status.
_BY_STATUS: dict[int, type[EngramError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
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
            hint="it may be overloaded; retry, or pass a larger timeout= to engram.Client",
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


class Http:
    """An ``httpx.Client`` bound to one server and key, speaking the engram error shape."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float | None,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        headers = {"User-Agent": f"engram-client/{_version()}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send a request; the decoded JSON body (None for an empty one), or raise."""
        with translate(self.url, self.timeout):
            response = self.client.request(method, url, **kwargs)
        if not response.is_success:
            raise error_from_response(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise EngramError(
                f"{method} {url} answered {response.status_code} with a body that is not JSON",
                hint="is the URL that of an engram server (not a proxy's page)?",
            ) from exc

    def pages(
        self, url: str, params: Mapping[str, Any], limit: int | None, *, page_size: int = PAGE
    ) -> Iterator[Any]:
        """The items of a ``{data, next_cursor}`` list, fetched lazily a page at a time,
        following cursors, up to ``limit`` items (None: all of them)."""
        query = {k: v for k, v in params.items() if v is not None}
        cursor: str | None = None
        left = limit
        while left is None or left > 0:
            size = page_size if left is None else min(left, page_size)
            page = {**query, "limit": size, **({"cursor": cursor} if cursor else {})}
            body = self.call("GET", url, params=page)
            yield from body["data"]
            if left is not None:
                left -= len(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def open_stream(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request and return the response with its body unread; raise for an error
        status. The caller closes the response."""
        request = self.client.build_request(method, url, **kwargs)
        with translate(self.url, self.timeout):
            response = self.client.send(request, stream=True)
        if not response.is_success:
            try:
                with translate(self.url, self.timeout):
                    response.read()
            finally:
                response.close()
            raise error_from_response(response)
        return response

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
        self._events = parse_sse(response.iter_lines())

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> tuple[str, Any]:
        try:
            with translate(self._http.url, self._http.timeout):
                item = next(self._events, None)
        except BaseException:
            self.close()
            raise
        if item is None:
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._response.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """Server-sent events from the lines of a ``text/event-stream`` body."""
    event = ""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event or "message", _decode("\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):  # a comment (keep-alive)
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:  # a last event without its blank line: the server closed early, keep it
        yield event or "message", _decode("\n".join(data))


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
