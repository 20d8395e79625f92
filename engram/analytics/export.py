"""Exported events as text lines: JSON Lines (one event object a line) or CSV (a header, then
one row an event, ``properties`` as JSON text). Both are produced a line at a time from the
store's paged reads, so an export of any size streams in constant memory."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from ..errors import InvalidInput

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
COLUMNS = (
    "id",
    "created_at",
    "kind",
    "user_id",
    "key_id",
    "query",
    "result_count",
    "latency_ms",
    "properties",
)
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def check_format(name: str) -> Format:
    if name not in FORMATS:
        raise InvalidInput(f"unknown export format {name!r}", hint="use jsonl or csv")
    return name


def lines(events: Iterable[dict[str, Any]], fmt: Format) -> Iterator[str]:
    """``events`` (as :meth:`Store.export_events` yields them) as lines ending in ``\\n``."""
    if fmt == "jsonl":
        for event in events:
            yield json.dumps(event, ensure_ascii=False, sort_keys=False) + "\n"
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield _take(buffer)
    for event in events:
        row = dict(event)
        row["properties"] = json.dumps(event["properties"], ensure_ascii=False, sort_keys=True)
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
        yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
