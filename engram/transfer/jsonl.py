"""``engram import --from-jsonl FILE``: one document per line, from another store's export.

Records map to documents exactly as ``engram ingest file.jsonl`` maps them (the same
:func:`~engram.ingest.loaders.records.record_document`, the same options), but the file is
streamed line by line, MongoDB Extended JSON is turned into plain values first
(``{"_id": {"$oid": "..."}}`` -> ``"..."``, ``{"$date": ...}`` -> an ISO 8601 string,
``{"$numberLong": "5"}`` -> 5, ...), and a bad line is reported and skipped instead of failing
the whole file. ``dry_run`` compares content hashes with the collection and writes nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CollectionNotFound, InvalidInput
from ..ingest.items import items_from_records
from ..ingest.loaders.base import LoaderOptions
from ..ingest.loaders.records import record_document
from ..ingest.pipeline import content_hash
from ..types import Failure, LoadedDocument
from .batches import recording
from .report import TransferReport

if TYPE_CHECKING:
    from ..engine import Engram

Progress = Callable[[str], None]
_MAX_ERRORS = 50  # failures listed in the report (all are counted)


def plain(value: Any) -> Any:
    """MongoDB Extended JSON (canonical or relaxed) as plain JSON values, recursively."""
    if isinstance(value, list):
        return [plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 or (len(value) == 2 and "$options" in value):
        (key, inner), *_ = value.items()
        if key in ("$oid", "$symbol", "$code", "$uuid"):
            return str(inner)
        if key == "$date":
            return _date(inner)
        if key in ("$numberLong", "$numberInt"):
            return int(inner)
        if key in ("$numberDouble", "$numberDecimal"):
            number = float(inner)
            return number if math.isfinite(number) else str(inner)
        if key == "$binary":
            return inner.get("base64") if isinstance(inner, dict) else inner
        if key == "$timestamp" and isinstance(inner, dict):
            return int(inner.get("t", 0))
        if key == "$regularExpression" and isinstance(inner, dict):
            return inner.get("pattern")
        if key in ("$minKey", "$maxKey", "$undefined"):
            return None
    return {k: plain(v) for k, v in value.items()}


def _date(value: Any) -> str:
    """A $date as ISO 8601 UTC (``2024-01-31T12:00:00Z``, milliseconds when present), so
    that string comparisons in filters order dates correctly."""
    if isinstance(value, dict):
        value = value.get("$numberLong", 0)
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        return value  # relaxed mode: already ISO 8601
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _records(path: Path, report: TransferReport) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(line number, record index, record) of every valid line; bad lines are reported."""
    try:
        f = path.open("r", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read ({exc.strerror or exc})") from exc
    index = 0
    with f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
                if not isinstance(value, dict):
                    raise ValueError(f"expected an object, got {type(value).__name__}")
                record = plain(value)
            except (ValueError, TypeError, AttributeError) as exc:
                _failed(report, f"{path}:{lineno}", f"invalid record ({exc})")
                continue
            yield lineno, index, record
            index += 1


def _failed(report: TransferReport, source: str, reason: str) -> None:
    report.skipped["failed"] += 1
    errors = report.extra.setdefault("errors", [])
    if len(errors) < _MAX_ERRORS:
        errors.append({"source": source, "reason": reason})


def _documents(
    path: Path, options: LoaderOptions, report: TransferReport
) -> Iterator[LoadedDocument]:
    seen: set[str] = set()
    for lineno, index, record in _records(path, report):
        doc = record_document(
            record, index=index, key=path.name, source=f"{path}:{lineno}", options=options
        )
        if doc is None:
            fields = ", ".join(options.text_fields or ("text",))
            _failed(report, f"{path}:{lineno}", f"no text: none of {fields} or title is set")
            continue
        if doc.key in seen:
            _failed(report, f"{path}:{lineno}", f"duplicate id {doc.key!r}")
            continue
        seen.add(doc.key)
        yield doc


def import_jsonl(
    db: Engram,
    path: str | Path,
    *,
    collection: str,
    tenant: str = "default",
    id_field: str | None = None,
    text_fields: Sequence[str] = (),
    title_field: str = "title",
    metadata_fields: Sequence[str] | None = None,
    dry_run: bool = False,
    sync: bool = False,
    progress: Progress | None = None,
) -> TransferReport:
    """Add or update one document per line of ``path`` in ``collection``; with ``sync``,
    also delete the collection's documents the file does not have (mirror it). ``dry_run``
    reports what would be added, changed, deleted and left unchanged, and writes nothing.

    The import is recorded as a batch (``report.extra["batch"]``) that
    :meth:`Engram.rollback_import` undoes."""
    started = time.perf_counter()
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"{file}: no such file")
    options = LoaderOptions(
        id_field=id_field or None,
        title_field=title_field,
        text_fields=tuple(text_fields) or None,
        metadata_fields=tuple(metadata_fields) if metadata_fields is not None else None,
    )
    report = TransferReport("dry run" if dry_run else "import from jsonl", str(file))
    docs = _documents(file, options, report)
    if dry_run:
        _dry_run(db, docs, collection, tenant, report, sync)
    else:
        with recording(db.store, tenant=tenant, kind="jsonl", source=str(file)) as batch:
            batch.collection(collection)
            items: Iterator[LoadedDocument | Failure] = docs
            if sync:
                items = _guarded(docs, report, file)
            done = db._run(  # noqa: SLF001 - Engram.add, with sync and the batch
                collection,
                items_from_records(items),
                sync=sync,
                language=None,
                progress=None,
                tenant=tenant,
                batch=batch.id,
            )
            batch.counts.update(added=done.added, updated=done.updated, deleted=done.deleted)
        report.extra["batch"] = batch.id
        report.counts["added"] += done.added
        report.counts["updated"] += done.updated
        report.counts["deleted"] += done.deleted
        report.counts["chunks embedded"] += done.chunks_embedded
        report.counts["chunks reused"] += done.chunks_reused
        report.skipped["unchanged"] += done.unchanged
        for source, reason in done.errors:
            _failed(report, source, reason)
        report.skipped = +report.skipped
    report.seconds = time.perf_counter() - started
    report.bytes = file.stat().st_size
    return report


def _guarded(
    docs: Iterator[LoadedDocument], report: TransferReport, file: Path
) -> Iterator[LoadedDocument | Failure]:
    """``docs``, then, if a line failed, a failure that stops a sync from deleting: the
    documents it does not see may be on the lines that failed."""
    yield from docs
    if report.skipped["failed"]:
        yield Failure(str(file), f"{report.skipped['failed']} line(s) failed")


def _dry_run(
    db: Engram,
    docs: Iterator[LoadedDocument],
    collection: str,
    tenant: str,
    report: TransferReport,
    sync: bool,
) -> None:
    settings = db.settings
    try:
        target = db.store.get_collection(collection, tenant=tenant)
        existing = db.store.document_hashes(target)
        settings = settings.for_collection(target.settings)
    except CollectionNotFound:
        existing = {}
        report.notes.append(f"collection {collection!r} does not exist yet: it would be created")
    changed: list[str] = []
    for doc in docs:
        stored = existing.get(doc.key)
        if stored is None:
            report.counts["would add"] += 1
        elif stored != content_hash(doc, settings):
            report.counts["would update"] += 1
            if len(changed) < _MAX_ERRORS:
                changed.append(doc.key)
        else:
            report.counts["unchanged"] += 1
        existing.pop(doc.key, None)
    if sync and existing:
        report.counts["would delete"] += len(existing)
        report.extra["would_delete_keys"] = sorted(existing)[:_MAX_ERRORS]
    report.extra["would_update_keys"] = changed
