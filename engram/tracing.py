"""Optional OpenTelemetry spans: an HTTP request, and inside it the embedding, the keyword
and vector legs, fusion, reranking, the LLM call and the store's write transactions.

Off by default, and then free: :func:`span` returns one shared no-op context manager. Turned
on by ``ENGRAM_TRACING=true`` for ``engram serve`` (needs ``pip install "engram[otel]"``),
or by :func:`enable` from code. Spans go to the global tracer provider when the process has
configured one (``opentelemetry-instrument``, or your own code); otherwise engram sets one
up with an OTLP exporter that reads the standard ``OTEL_EXPORTER_OTLP_*`` variables.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger("engram")

_tracer: Any = None  # an opentelemetry Tracer while tracing is on


class _NoSpan:
    """What :func:`span` yields while tracing is off: attributes go nowhere."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def end(self) -> None:
        pass


NO_SPAN = _NoSpan()


@contextlib.contextmanager
def _no_span() -> Iterator[_NoSpan]:
    yield NO_SPAN


def enabled() -> bool:
    return _tracer is not None


def enable(tracer_provider: Any = None) -> None:
    """Emit spans through ``tracer_provider`` (default: the global one, set up with an OTLP
    exporter when the process has none)."""
    global _tracer
    try:
        from opentelemetry import trace
    except ImportError as exc:
        from .errors import MissingDependency

        raise MissingDependency(
            "tracing needs OpenTelemetry", hint='pip install "engram[otel]"'
        ) from exc
    if tracer_provider is None:
        tracer_provider = trace.get_tracer_provider()
        if type(tracer_provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
            tracer_provider = _otlp_provider() or tracer_provider
    _tracer = tracer_provider.get_tracer("engram")


def disable() -> None:
    global _tracer
    _tracer = None


def _otlp_provider() -> Any:
    """A global SDK provider exporting over OTLP, or None (and a warning) without the SDK."""
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        logger.warning("tracing: no OpenTelemetry SDK installed, spans are dropped")
        return None
    exporter: Any = None
    with contextlib.suppress(ImportError):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is None:
        with contextlib.suppress(ImportError):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )

            exporter = GrpcExporter()
    if exporter is None:
        logger.warning("tracing: no OTLP exporter installed, spans are dropped")
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": "engram"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span around a ``with`` block, child of the current one; yields the span (or a
    no-op stand-in) for attributes known only at the end."""
    if _tracer is None:
        return _no_span()
    return _tracer.start_as_current_span(name, attributes=attributes or None)


def start(name: str, **attributes: Any) -> Any:
    """A span that is not made current, for work that outlives a ``with`` block (a
    streamed reply): call ``end()`` on it."""
    if _tracer is None:
        return NO_SPAN
    return _tracer.start_span(name, attributes=attributes or None)
