"""The request being served, as a context variable.

The observability middleware sets it for the duration of each request. FastAPI runs route
functions in a threadpool that copies the context, so route code, the helpers of
:mod:`engram.server.observability` and :class:`~engram.server.logs.JsonFormatter` all see it
without being handed the request.

It imports none of them (the log formatter and authentication import it): what a request
reports to is named by the :class:`Reporter` protocol, which ``Observability`` satisfies.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..store.records import EventWrite
    from .metrics import Metrics
    from .principal import Principal


class Reporter(Protocol):
    """Where a request's metrics and events go (engram.server.observability.Observability)."""

    @property
    def metrics(self) -> Metrics: ...

    def record(self, event: EventWrite) -> None: ...


@dataclass(slots=True)
class RequestContext:
    request_id: str
    observability: Reporter
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None  # set once the caller is known

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 3)


_current: ContextVar[RequestContext | None] = ContextVar("engram_request", default=None)


def current_request() -> RequestContext | None:
    """The context of the request being served, or None outside a request."""
    return _current.get()


def enter_request(context: RequestContext) -> Token[RequestContext | None]:
    """Make ``context`` current; returns the token :func:`leave_request` takes."""
    return _current.set(context)


def leave_request(token: Token[RequestContext | None]) -> None:
    _current.reset(token)


def note_principal(principal: Principal) -> None:
    """Name the caller of the current request in its access log line."""
    context = current_request()
    if context is not None:
        context.principal = principal
