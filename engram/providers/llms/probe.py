"""Reachability of the configured chat-model endpoints (for ``/v1/ready`` and ``engram
doctor``): one plain ``GET`` of each base URL, no API key sent, any HTTP answer counts."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from engram.errors import ConfigError
from engram.providers.llms.factory import PRESETS, parse_spec

if TYPE_CHECKING:
    import httpx


@dataclass(frozen=True, slots=True)
class EndpointProbe:
    name: str  # provider:model, never a key
    url: str  # the base URL, credentials removed
    ok: bool
    latency_ms: float
    error: str | None = None


def _public(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def probe_llms(
    specs: str, *, timeout: float = 2.0, transport: httpx.BaseTransport | None = None
) -> list[EndpointProbe]:
    """Probe each spec of a comma-separated chain (see ``ENGRAM_LLM``); a malformed spec is
    reported as unreachable with the parse error. ``transport`` is an httpx transport
    (tests)."""
    import httpx

    probes: list[EndpointProbe] = []
    with httpx.Client(timeout=timeout, transport=transport) as client:
        for spec in (s.strip() for s in specs.split(",")):
            if not spec:
                continue
            started = time.perf_counter()
            try:
                parsed = parse_spec(spec)
            except ConfigError as exc:
                probes.append(EndpointProbe(spec, "", False, 0.0, exc.message))
                continue
            name = f"{parsed.provider}:{parsed.model}"
            url = parsed.base_url or PRESETS[parsed.provider].base_url
            error = None
            try:
                client.get(url)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            latency = round((time.perf_counter() - started) * 1000, 3)
            probes.append(EndpointProbe(name, _public(url), error is None, latency, error))
    return probes
