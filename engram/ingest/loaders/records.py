"""Record formats (JSON, JSON Lines, CSV): one document per record.

A record maps to a document through :class:`LoaderOptions`: its id becomes the document key,
``title`` stays separate from the text (the pipeline indexes it on its own), the text fields
make the text and everything else is metadata. A BEIR ``corpus.jsonl`` line loads as-is.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from typing import Any

from engram.ingest.loaders.base import LoaderOptions, decode_text, fail, no_text, paragraph_spans
from engram.types import Block, Failure, LoadedDocument
from engram.unicode import describe, lone_surrogate

_ID_FIELDS = ("_id", "id")
_LIST_KEYS = ("data", "documents", "records")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return "\n".join(filter(None, (_as_text(item) for item in value)))
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _id_fields(options: LoaderOptions) -> tuple[str, ...]:
    return (options.id_field,) if options.id_field else _ID_FIELDS


def record_document(
    record: dict[str, Any],
    *,
    index: int,
    key: str,
    source: str,
    options: LoaderOptions,
    text_fields: Sequence[str] | None = None,
    labelled: bool = False,
) -> LoadedDocument | None:
    """One record as a document, or ``None`` when it has neither text nor title.

    The key is the record id, else ``f"{key}#{index}"``. A record with a title but no text
    keeps the title as its text, so it stays searchable. ``labelled`` writes ``field: value``
    lines (used when every CSV column becomes text).
    """
    id_fields = _id_fields(options)
    id_field = next((f for f in id_fields if _as_text(record.get(f))), None)
    doc_key = _as_text(record[id_field]) if id_field else f"{key}#{index}"
    title = _as_text(record.get(options.title_field))
    fields = tuple(text_fields or options.text_fields or ("text",))
    parts = [(f, _as_text(record.get(f))) for f in fields]
    text = "\n\n".join(f"{f}: {v}" if labelled else v for f, v in parts if v) or title
    if not text:
        return None
    used = {*fields, options.title_field, *(id_fields if id_field else ())}
    nested = record.get("metadata")
    if options.metadata_fields is None:
        metadata = dict(nested) if isinstance(nested, dict) else {}
        skip = used | ({"metadata"} if isinstance(nested, dict) else set())
        metadata.update((k, v) for k, v in record.items() if k not in skip)
    else:
        lookup = {**(nested if isinstance(nested, dict) else {}), **record}
        metadata = {f: lookup[f] for f in options.metadata_fields if f in lookup}
    blocks = [Block(a, b) for a, b in paragraph_spans(text)]
    return LoadedDocument(
        key=doc_key, text=text, title=title, metadata=metadata, blocks=blocks, source=source
    )


def _collect(
    records: Iterable[tuple[int, Any]], *, key: str, source: str, options: LoaderOptions, **kw: Any
) -> list[LoadedDocument | Failure]:
    """The documents of ``records`` ((index, record) pairs, or a :class:`Failure` in place of
    a record that could not be read); a bad record is reported and skipped, the rest kept."""
    docs: list[LoadedDocument | Failure] = []
    for index, record in records:
        if isinstance(record, Failure):
            docs.append(record)
            continue
        if isinstance(record, str):
            record = {"text": record}
        if not isinstance(record, dict):
            raise fail(source, f"record {index}: expected an object, got {type(record).__name__}")
        bad = lone_surrogate(record)
        if bad is not None:
            docs.append(Failure(source, f"record {index}: {describe(bad)}"))
            continue
        doc = record_document(record, index=index, key=key, source=source, options=options, **kw)
        if doc is not None:
            docs.append(doc)
    if not docs:
        raise no_text(source, "no record has a text or title field; set text_fields")
    if not any(isinstance(d, LoadedDocument) for d in docs):  # nothing readable: one error
        failures = [d for d in docs if isinstance(d, Failure)]
        more = f" (and {len(failures) - 1} more bad records)" if len(failures) > 1 else ""
        raise fail(source, failures[0].reason + more)
    return docs


def load_json(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument | Failure]:
    """A list of records, an object holding one under ``data``/``documents``/``records``, or a
    single record (whose key is the file's key unless it has an id)."""
    text = decode_text(data, source, options.encoding)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(
            source, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    if isinstance(value, dict):
        listed = next((value[k] for k in _LIST_KEYS if isinstance(value.get(k), list)), None)
        if listed is None:
            docs = _collect([(0, value)], key=key, source=source, options=options)
            if isinstance(docs[0], LoadedDocument) and not any(
                _as_text(value.get(f)) for f in _id_fields(options)
            ):
                docs[0].key = key
            return docs
        value = listed
    if not isinstance(value, list):
        raise fail(source, f"expected a JSON array or object, got {type(value).__name__}")
    return _collect(enumerate(value), key=key, source=source, options=options)


def _jsonl_records(text: str, source: str) -> Iterable[tuple[int, Any]]:
    """(index, record) per non-blank line; a line that is not a JSON object, or holds text
    that is not valid Unicode, gives a :class:`Failure` naming its line instead."""
    index = 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            reason = f"line {lineno}: invalid JSON at column {exc.colno}: {exc.msg}"
            yield index, Failure(source, reason + " (each line must be one JSON object)")
            index += 1
            continue
        if not isinstance(record, dict | str):
            reason = f"line {lineno}: expected an object, got {type(record).__name__}"
            yield index, Failure(source, reason)
        elif (bad := lone_surrogate(record)) is not None:
            yield index, Failure(source, f"line {lineno}: {describe(bad)}")
        else:
            yield index, record
        index += 1


def load_jsonl(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument | Failure]:
    """One JSON object per line; blank lines are ignored. A bad line is reported with its
    number and skipped; the other lines are loaded."""
    text = decode_text(data, source, options.encoding)
    return _collect(_jsonl_records(text, source), key=key, source=source, options=options)


def load_csv(
    data: bytes, *, key: str, name: str, source: str, options: LoaderOptions
) -> list[LoadedDocument | Failure]:
    """A CSV with a header row; the delimiter (, ; tab |) is sniffed. Without a ``text``
    column (and no ``text_fields`` option) every column but id and title becomes text."""
    text = decode_text(data, source, options.encoding)
    # Long text cells exceed the csv module's 128 KiB default field limit.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:65536], delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [(h or "").strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    text_fields: list[str] | None = None
    labelled = False
    wanted = options.text_fields or ("text",)
    if not options.text_fields and not set(wanted) & set(header):
        skip = {options.id_field, *_ID_FIELDS, options.title_field}
        text_fields = [h for h in header if h and h not in skip]
        labelled = True

    def rows() -> Iterable[tuple[int, Any]]:
        try:
            for index, row in enumerate(reader):
                # Extra cells land under the key None; empty cells are missing values.
                yield index, {k: v for k, v in row.items() if k and v not in (None, "")}
        except csv.Error as exc:
            raise fail(source, f"line {reader.line_num}: {exc}") from exc

    return _collect(
        rows(), key=key, source=source, options=options, text_fields=text_fields, labelled=labelled
    )
