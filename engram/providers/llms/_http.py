"""HTTP plumbing shared by the chat providers and the remote embedders: one client, bounded
retries, error translation (:class:`HTTPEndpoint`).

:class:`HTTPChatLLM` also runs the request of :meth:`~HTTPChatLLM.complete` and
:meth:`~HTTPChatLLM.stream` (payload, POST, reading the reply, a truncated stream); a
provider supplies only its wire format: its path, sampling fields and how its replies and
stream lines hold the text.

A request is retried, with exponential backoff and jitter, when it could not connect or the
server answered 429 or 5xx; never after another 4xx (the same request would fail the same way)
and never once a streamed reply has started (its tokens are already out). Every httpx
exception is translated in this module, so callers only ever see ``LLMError``.
"""

from __future__ import annotations

import json
import random
import time
from abc import abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from typing import Any, TypeVar

import httpx

from engram import tracing
from engram.errors import ConfigError
from engram.providers.llms.base import LLM, ChatMessage
from engram.providers.llms.errors import protocol_error, status_error, translate

T = TypeVar("T")

# Failures where the request never reached the model, so sending it again is safe and cheap.
_RETRY_EXCEPTIONS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds asked for by a ``Retry-After`` header in its delta-seconds form, if any."""
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HTTPEndpoint:
    """A model behind an HTTP API: one client, JSON POSTs retried with backoff, every httpx
    failure translated. The base of the HTTP chat providers and the remote embedders.

    ``client`` (an ``httpx.Client``, left open on :meth:`close`) or ``transport`` may be
    injected, for tests or to share a connection pool. ``timeout`` bounds each network wait
    (connecting, sending, and every wait for the next piece of a reply); ``connect_timeout``
    caps the connect phase so a dead host fails fast. ``retries`` extra attempts are made,
    ``backoff * 2**attempt`` seconds apart (capped at ``max_backoff``); a ``Retry-After``
    longer than ``max_backoff`` fails at once, so a fallback model can answer instead.
    ``deadline`` bounds a whole call — retries, waits and every piece of the reply — so an
    upstream trickling a token every few seconds cannot hold a request forever: no attempt
    or retry starts past it, an attempt's timeouts are cut to the time left when it starts,
    and the deadline is checked after every piece of the reply, which is then abandoned and
    its connection closed (LLMUnavailable). A call thus ends at the deadline, or at most one
    read wait after it when the upstream stalls mid-reply.
    """

    default_base_url = ""
    span_name = "llm"  # of the tracing span around each call, and its attributes' prefix

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str = "llm",
        client: httpx.Client | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        deadline: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not model.strip():
            raise ConfigError(f"{name}: no model name given", hint="e.g. ollama:llama3.2")
        if timeout <= 0 or connect_timeout <= 0 or retries < 0 or backoff < 0:
            raise ConfigError(
                f"{name}: timeouts must be > 0 and retries, backoff >= 0 "
                f"(got timeout={timeout}, connect_timeout={connect_timeout}, "
                f"retries={retries}, backoff={backoff})"
            )
        if deadline is not None and deadline <= 0:
            raise ConfigError(f"{name}: the deadline must be > 0 (got {deadline})")
        if client is not None and transport is not None:
            raise ConfigError(f"{name}: pass either client or transport, not both")
        url = _parse_base_url(base_url or self.default_base_url, name)
        self.model = model
        self.model_id = f"{name}:{model}"
        self.base_url = str(url).rstrip("/")
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.deadline = deadline
        self._sleep = sleep
        self._api_key = api_key or None
        self._secrets = (self._api_key, url.password)
        host = f"[{url.host}]" if ":" in url.host else url.host
        port = f":{url.port}" if url.port else ""
        # Shown in errors: no user:password, no query string (where some proxies put keys).
        self.where = f"{name} model {model!r} at {url.scheme}://{host}{port}{url.path.rstrip('/')}"
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(transport=transport)

    def close(self) -> None:
        """Close the HTTP client if this provider created it."""
        if self._owns_client:
            self._client.close()

    def _headers(self, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers

    def _end(self) -> float:
        """The monotonic time a call starting now must be over by (inf: no deadline)."""
        return time.monotonic() + self.deadline if self.deadline else float("inf")

    def _left(self, end: float) -> float:
        """Seconds left before ``end``; raises LLMUnavailable once it has passed."""
        left = end - time.monotonic()
        if left <= 0:
            raise self._protocol_error(
                f"no complete reply within the deadline of {self.deadline:g}s",
                unavailable=True,
            )
        return left

    def _send(
        self,
        path: str,
        payload: dict[str, Any],
        *,
        stream: bool,
        timeout: float | None,
        end: float,
    ) -> httpx.Response:
        """POST ``payload`` as JSON, retrying what is worth retrying; returns a 2xx response
        (unread if ``stream``: the caller must close it)."""
        attempt = 0
        while True:
            seconds = min(timeout or self.timeout, self._left(end))
            connect = min(self.connect_timeout, seconds)
            request = self._client.build_request(
                "POST",
                self.base_url + path,
                json=payload,
                headers=self._headers("text/event-stream" if stream else "application/json"),
                timeout=httpx.Timeout(seconds, connect=connect),
            )
            try:
                response = self._client.send(request, stream=stream)
            except httpx.HTTPError as exc:
                if attempt < self.retries and isinstance(exc, _RETRY_EXCEPTIONS):
                    self._wait(attempt, None, end)
                    attempt += 1
                    continue
                waited = connect if isinstance(exc, httpx.ConnectTimeout) else seconds
                raise translate(
                    exc, where=self.where, timeout=waited, secrets=self._secrets
                ) from exc
            if response.is_success:
                return response
            try:
                response.read()  # the body holds the provider's explanation
            except httpx.HTTPError:
                pass  # the status alone still makes a useful error
            finally:
                response.close()
            after = _retry_after(response)
            if (
                attempt < self.retries
                and _retryable_status(response.status_code)
                and (after is None or after <= self.max_backoff)
            ):
                self._wait(attempt, after, end)
                attempt += 1
                continue
            raise status_error(response, where=self.where, secrets=self._secrets)

    def _wait(self, attempt: int, retry_after: float | None, end: float) -> None:
        # Jitter spreads out the retries of many concurrent requests after a shared outage.
        delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)
        delay = max(delay, retry_after or 0.0)
        if delay >= end - time.monotonic():
            self._left(float("-inf"))  # the retry would start past the deadline: fail now
        self._sleep(delay)

    def _post_json(self, path: str, payload: dict[str, Any], timeout: float | None) -> Any:
        end = self._end()
        attributes = {f"{self.span_name}.model": self.model_id, f"{self.span_name}.stream": False}
        with tracing.span(self.span_name, **attributes):
            # Streamed in pieces, so that the deadline is checked while a slow body arrives.
            response = self._send(path, payload, stream=True, timeout=timeout, end=end)
            body = b"".join(self._pieces(response, response.iter_bytes(), end, timeout))
        try:
            return json.loads(body)
        except ValueError as exc:
            raise self._protocol_error("the reply is not JSON") from exc

    def _pieces(
        self, response: httpx.Response, pieces: Iterator[T], end: float, timeout: float | None
    ) -> Generator[T, None, None]:
        """The pieces of a streamed reply, the deadline checked after each arrives, a failure
        translated like any other; the response is closed when they end or are abandoned."""
        try:
            for piece in pieces:
                self._left(end)
                yield piece
        except httpx.HTTPError as exc:
            raise translate(
                exc, where=self.where, timeout=timeout or self.timeout, secrets=self._secrets
            ) from exc
        finally:
            response.close()

    def _protocol_error(self, message: str, *, unavailable: bool = False) -> Exception:
        return protocol_error(
            message, where=self.where, secrets=self._secrets, unavailable=unavailable
        )


class HTTPChatLLM(HTTPEndpoint, LLM):
    """Base of the HTTP chat providers (transport and its options: :class:`HTTPEndpoint`)."""

    chat_path = ""  # of the chat endpoint, below the base URL
    stream_end = ""  # what ends a complete stream, named in the error when it is missing

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> str:
        """The whole reply (where it is in the reply: :meth:`_reply_text`)."""
        payload = self._payload(messages, max_tokens, temperature, stream=False)
        return self._reply_text(self._post_json(self.chat_path, payload, timeout))

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Iterator[str]:
        """The reply as it is generated (read from the stream's lines by :meth:`_texts`)."""
        payload = self._payload(messages, max_tokens, temperature, stream=True)
        with closing(self._lines(self.chat_path, payload, timeout)) as lines:
            ended = yield from self._texts(lines)
        # Without its end the connection was cut and the text is truncated.
        if not ended:
            raise self._protocol_error(
                f"the stream ended before {self.stream_end}", unavailable=True
            )

    def _payload(
        self,
        messages: Sequence[ChatMessage],
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in messages],
            "stream": stream,
        }
        return body | self._sampling(max_tokens, temperature)

    @abstractmethod
    def _sampling(self, max_tokens: int | None, temperature: float | None) -> dict[str, Any]:
        """The request's fields for the length limit and temperature (None: not sent)."""

    @abstractmethod
    def _reply_text(self, data: Any) -> str:
        """The text of a whole (JSON) reply."""

    @abstractmethod
    def _texts(self, lines: Iterator[str]) -> Generator[str, None, bool]:
        """The pieces of text in a streamed reply's lines; returns whether the stream
        ended as it should (False: the lines ran out before its end)."""

    def _lines(
        self, path: str, payload: dict[str, Any], timeout: float | None
    ) -> Generator[str, None, None]:
        """The lines of a streamed reply; the response is closed when the generator ends or
        is closed (the client of a streamed answer went away), and a failure mid-stream is
        translated like any other."""
        end = self._end()
        # Not the current span: the generator yields to its caller between lines.
        span = tracing.start("llm", **{"llm.model": self.model_id, "llm.stream": True})
        try:
            response = self._send(path, payload, stream=True, timeout=timeout, end=end)
            yield from self._pieces(response, response.iter_lines(), end, timeout)
        finally:
            span.end()


def _parse_base_url(base_url: str, name: str) -> httpx.URL:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        # The URL itself is left out of the message: it may hold a user:password.
        raise ConfigError(f"{name}: invalid base URL", hint="e.g. http://127.0.0.1:11434") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"{name}: the base URL must be http(s)://host[:port][/path]",
            hint="e.g. http://127.0.0.1:11434 or https://api.openai.com/v1",
        )
    return url
