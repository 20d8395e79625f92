"""Structured logs: one JSON object per line, with the request id, secrets redacted.

:class:`JsonFormatter` works for every logger. A record's ``fields`` (``extra={"fields":
{...}}``) become top-level keys; the id of the request being served is added from the
request context, so a failure logged deep in a route still names its request. Values under
secret-looking keys and secret-looking substrings of messages (API keys, bearer tokens,
passwords in URLs) are replaced by ``[redacted]`` before anything is written.

``engram serve`` hands :func:`logging_config` to uvicorn, which applies it in every worker
process.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from .context import current_request

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(r"authorization|api[-_]?key|password|passwd|secret|token|cookie", re.I)
_SECRET_TEXT = [
    # engram keys: egm_<id>_<secret> keeps the id (it names the key, it is not a secret).
    (re.compile(r"\b(egm_[0-9a-f]{12}_)[A-Za-z0-9_-]{8,}"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer\s+)[^\s,;\"']+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(basic\s+)[A-Za-z0-9+/=]{8,}"), rf"\1{REDACTED}"),
    # user:password@ in URLs
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@", re.I), rf"\1{REDACTED}@"),
    # key=value / "key": "value" for secret-looking keys
    (
        re.compile(
            r"(?i)((?:api[-_]?key|password|passwd|secret|token|authorization)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+"
        ),
        rf"\1{REDACTED}",
    ),
]


# Every pattern above needs one of these words: most texts (an access line, a path) have
# none, and one search for them costs far less than the five substitutions.
_MAYBE_SECRET = re.compile(
    r"egm_|bearer|basic|://|api[-_]?key|password|passwd|secret|token|authorization", re.I
)


def redact(text: str) -> str:
    """``text`` with API keys, bearer tokens and passwords replaced by ``[redacted]``."""
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: REDACTED if _SECRET_KEYS.search(str(k)) else _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: ``ts``, ``level``, ``logger``, ``message``,
    ``request_id`` (when serving a request), the record's ``fields``, and ``exc`` (the
    traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        context = current_request()
        if context is not None:
            out["request_id"] = context.request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(_clean(fields))
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            out["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def logging_config(level: str = "info") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` configuration: JSON lines on stderr for engram
    and uvicorn; uvicorn's own access log is off (engram's ``engram.access`` replaces it)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "engram": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
