"""The library API of :class:`engram.Engram` over HTTP, as specs (see :mod:`.flow`): the
collections, documents, search and answers of :class:`~engram.Client` and
:class:`~engram.AsyncClient`, written once for both."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..answers.generate import Answer
from ..errors import ERRORS_BY_CODE, DocumentNotFound, EngramError, InvalidInput, LoaderError
from ..ingest.items import items_from_records
from ..ingest.sources import iter_files
from ..search.searcher import SearchResponse
from ..search.suggest import Suggestion
from ..store.records import DocumentVersion, Where
from ..types import (
    Collection,
    DocumentContent,
    DocumentInfo,
    IngestReport,
    LoadedDocument,
    SearchMode,
    VersionDiff,
)
from . import convert
from .convert import from_json
from .flow import Events, Flow, Pages, Request, Sleep, collect, fetch
from .http import error_from_body, path

DEFAULT_COLLECTION = "default"
# A batch of documents stays under the server's limits: 1,000 documents, 10 MiB of body.
BATCH_DOCUMENTS = 1000
BATCH_BYTES = 8 * 1024 * 1024
EMBED_BATCH = 1000  # texts per POST /v1/embeddings (the server's limit)


@dataclass(slots=True)
class RemoteSearchResponse(SearchResponse):
    """A :class:`~engram.search.searcher.SearchResponse` from the server, plus its opaque
    ``next_cursor``: pass it back as ``search(..., cursor=)`` for the next page (None on the
    last one). ``next_offset`` is known only when the page was asked for by ``offset``."""

    next_cursor: str | None = None


# -- collections -------------------------------------------------------------------------------
def collections() -> Flow[list[Collection]]:
    """Every collection of the key's tenant."""
    return fetch(
        "GET", path("collections"), lambda b: [from_json(Collection, c) for c in b["data"]]
    )


def collection(name: str = DEFAULT_COLLECTION) -> Flow[Collection]:
    """One collection; raises CollectionNotFound."""
    return fetch("GET", path("collections", name), lambda body: from_json(Collection, body))


def delete_collection(name: str) -> Flow[None]:
    """Delete a collection and every trace of its documents (admin scope)."""
    return fetch("DELETE", path("collections", name), lambda body: None)


# -- ingestion ---------------------------------------------------------------------------------
def add(
    documents: Iterable[Mapping[str, Any] | LoadedDocument],
    *,
    collection: str = DEFAULT_COLLECTION,
) -> Flow[IngestReport]:
    """Ingest documents given as ``{"id", "text", "title"?, "metadata"?}`` dicts (or
    :class:`~engram.types.LoadedDocument`), sent in batches; one report for all."""
    started = time.perf_counter()
    total = IngestReport()
    for batch in _batches(documents, total):
        convert.merge(total, (yield from _add_batch(batch, collection)))
    total.seconds = time.perf_counter() - started
    return total


def _batches(
    documents: Iterable[Mapping[str, Any] | LoadedDocument], total: IngestReport
) -> Iterator[list[dict[str, Any]]]:
    """The records of ``documents`` in batches the server accepts; a record that cannot be
    read is counted in ``total`` instead."""
    batch: list[dict[str, Any]] = []
    size = 0
    for doc in items_from_records(documents):
        if not isinstance(doc, LoadedDocument):  # a record that cannot be read
            convert.merge(total, IngestReport(failed=1, errors=[(doc.source, doc.reason)]))
            continue
        record: dict[str, Any] = {"id": doc.key, "text": doc.text}
        if doc.title:
            record["title"] = doc.title
        if doc.metadata:
            record["metadata"] = doc.metadata
        length = len(json.dumps(record, ensure_ascii=False).encode())
        if batch and (len(batch) >= BATCH_DOCUMENTS or size + length > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += length
    if batch:
        yield batch


def _add_batch(batch: list[dict[str, Any]], collection: str) -> Flow[IngestReport]:
    url = path("collections", collection) + "/documents:batch"
    body = yield Request("POST", url, json={"documents": batch})
    if "job_id" in body:  # 202: a large batch runs as a background job
        body = yield from _wait_for_job(body)
    return convert.report(body)


def _wait_for_job(job: dict[str, Any]) -> Flow[Any]:
    """The ingestion report of a background job, polled until it finishes."""
    delay = 0.05
    while job["status"] not in ("succeeded", "failed"):
        yield Sleep(delay)
        delay = min(delay * 1.5, 1.0)
        job = yield Request("GET", path("jobs", job["job_id"]))
    if job["status"] == "failed" or job.get("result") is None:
        raise EngramError(
            f"ingestion job {job['job_id']} failed: {job.get('error') or 'no reason given'}",
            hint=f"GET /v1/jobs/{job['job_id']} has its details",
            job_id=job["job_id"],
        )
    return job["result"]


def ingest(
    paths: str | Path | Sequence[str | Path],
    *,
    collection: str = DEFAULT_COLLECTION,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> Flow[IngestReport]:
    """Upload files, and the files under folders (filtered by ``include``/``exclude``
    globs), one by one; the server parses them. Keys are as ``Engram.ingest`` makes them:
    the path relative to the folder, or the file's name. A missing path or a file the
    server cannot parse is counted in ``failed`` and ``errors``; the rest go on."""
    started = time.perf_counter()
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise InvalidInput("nothing to ingest", hint="pass files or folders")
    total = IngestReport()
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            total.failed += 1
            total.errors.append((str(root), "no such file or directory"))
            continue
        for file, key in iter_files(root, include=include, exclude=exclude):
            try:
                report = yield from _upload(file, key, collection)
            except (LoaderError, InvalidInput) as exc:  # this file only
                report = IngestReport(failed=1, errors=[(str(file), str(exc))])
            convert.merge(total, report)
    total.seconds = time.perf_counter() - started
    return total


def _upload(file: Path, key: str, collection: str) -> Flow[IngestReport]:
    url = path("collections", collection, "files")
    with file.open("rb") as handle:  # streamed from the file, open until the answer
        body = yield Request("POST", url, files={"file": (file.name, handle)}, data={"key": key})
    return convert.report(body)


# -- documents ---------------------------------------------------------------------------------
def documents(
    collection: str = DEFAULT_COLLECTION, *, limit: int | None = 100, where: Where | None = None
) -> Flow[list[DocumentInfo]]:
    """The documents of a collection in key order: at most ``limit`` (None: all)."""
    return collect(iter_documents(collection, where=where, limit=limit))


def iter_documents(
    collection: str = DEFAULT_COLLECTION,
    *,
    where: Where | None = None,
    limit: int | None = None,
    page_size: int = 100,
) -> Pages[DocumentInfo]:
    """The documents of a collection in key order, fetched lazily ``page_size`` at a
    time, following the server's cursors."""
    params = {"where": json.dumps(where) if where is not None else None}
    url = path("collections", collection, "documents")
    return Pages(url, params, limit, lambda b: from_json(DocumentInfo, b), page_size=page_size)


def document(key: str, collection: str = DEFAULT_COLLECTION) -> Flow[DocumentInfo]:
    """One document; raises DocumentNotFound (or CollectionNotFound)."""
    return fetch("GET", _document(key, collection), lambda body: from_json(DocumentInfo, body))


def versions(key: str, collection: str = DEFAULT_COLLECTION) -> Flow[list[DocumentVersion]]:
    """Every version of a document, oldest first."""
    return fetch(
        "GET",
        _document(key, collection),
        lambda body: [from_json(DocumentVersion, v) for v in body["versions"]],
    )


def document_version(
    key: str, version: int | None = None, collection: str = DEFAULT_COLLECTION
) -> Flow[DocumentContent]:
    """Document ``key`` as it was at ``version`` (None: the current one): its text, title,
    metadata and chunks; raises DocumentNotFound when that version is not kept."""
    if version is None:
        current = yield from document(key, collection)
        version = current.version
    url = _document(key, collection) + f"/versions/{int(version)}"
    return convert.document_content((yield Request("GET", url)))


def diff_versions(
    key: str,
    from_version: int | None = None,
    to_version: int | None = None,
    collection: str = DEFAULT_COLLECTION,
    *,
    context: int = 3,
) -> Flow[VersionDiff]:
    """How document ``key`` changed from ``from_version`` (None: the version before
    ``to_version``) to ``to_version`` (None: the current one)."""
    params = {"from": from_version, "to": to_version, "context": context}
    url = _document(key, collection) + "/diff"
    body = yield Request("GET", url, params={k: v for k, v in params.items() if v is not None})
    return convert.version_diff(body)


def restore_version(
    key: str, version: int, collection: str = DEFAULT_COLLECTION
) -> Flow[DocumentInfo]:
    """Make version ``version`` of document ``key`` current again (a new version, from the
    cached vectors of its chunks); returns the document as it now is."""
    url = _document(key, collection) + f"/versions/{int(version)}:restore"
    return from_json(DocumentInfo, (yield Request("POST", url)))


def purge_versions(
    collection: str = DEFAULT_COLLECTION,
    *,
    keep: int = 1,
    keys: str | Sequence[str] | None = None,
) -> Flow[int]:
    """Drop the versions of documents (of ``keys``, or all) beyond their ``keep`` newest;
    returns how many were dropped."""
    if isinstance(keys, str):
        keys = [keys]
    body: dict[str, Any] = {"keep": keep, "keys": list(keys) if keys is not None else None}
    found = yield Request("POST", path("collections", collection) + "/versions:purge", json=body)
    return int(found["deleted"])


def _document(key: str, collection: str) -> str:
    return path("collections", collection, "documents", key=key)


def delete(keys: str | Sequence[str], *, collection: str = DEFAULT_COLLECTION) -> Flow[int]:
    """Delete documents by key from every index; returns how many existed."""
    if isinstance(keys, str):
        keys = [keys]
    if not keys:
        yield Request("GET", path("collections", collection))  # a missing one still raises
        return 0
    deleted = 0
    for key in keys:
        try:
            yield Request("DELETE", _document(key, collection))
        except DocumentNotFound:
            continue
        deleted += 1
    return deleted


# -- search ------------------------------------------------------------------------------------
def search(
    query: str,
    *,
    collection: str | Sequence[str] = DEFAULT_COLLECTION,
    k: int = 10,
    offset: int = 0,
    cursor: str | None = None,
    mode: SearchMode = "hybrid",
    where: Where | None = None,
    rerank: bool = False,
    highlight: bool = True,
    fusion: str | None = None,
    alpha: float | None = None,
    group_by: Literal["document"] | None = None,
    rerank_weight: float | None = None,
) -> Flow[RemoteSearchResponse]:
    """Search a collection; ``response.results`` holds the chunks, best first, and
    ``response.next_cursor`` (as ``cursor=``) fetches the next page. ``collection`` may list
    several, or be ``"*"``: one ranking, each result naming its collection. ``fusion``,
    ``alpha``, ``group_by`` and ``rerank_weight`` as in :meth:`engram.Engram.search`."""
    body: dict[str, Any] = {
        "query": query,
        "collection": _names(collection),
        "k": k,
        "mode": mode,
        "where": where,
        "rerank": rerank,
        "highlight": highlight,
    }
    options = {
        "fusion": fusion,
        "alpha": alpha,
        "group_by": group_by,
        "rerank_weight": rerank_weight,
    }
    body.update({name: value for name, value in options.items() if value is not None})
    if cursor is not None:
        body["cursor"] = cursor
    if offset:
        body["offset"] = offset
    found = yield Request("POST", path("search"), json=body)
    next_cursor = found.get("next_cursor")
    return RemoteSearchResponse(
        results=[convert.search_result(r) for r in found["data"]],
        mode=found["mode"],
        next_offset=offset + k if next_cursor and cursor is None else None,
        timings_ms=dict(found.get("timings_ms") or {}),
        expansions=dict(found.get("expansions") or {}),
        next_cursor=next_cursor,
    )


def suggest(
    prefix: str, *, collection: str = DEFAULT_COLLECTION, limit: int = 10
) -> Flow[list[Suggestion]]:
    """Completions of ``prefix`` (autocomplete), best first: past successful queries,
    document titles and indexed words, as in :meth:`engram.Engram.suggest`."""
    found = yield Request(
        "GET", path("collections", collection, "suggest"), params={"q": prefix, "limit": limit}
    )
    return [Suggestion(s["text"], s["source"], int(s["count"])) for s in found["data"]]


def embed(
    texts: Sequence[str],
    *,
    kind: Literal["passage", "query"] = "passage",
    model: str = "engram",
) -> Flow[list[list[float]]]:
    """Vectors of ``texts`` by the server's embedding model, in order (``POST
    /v1/embeddings``, sent 1,000 texts at a time): ``kind="query"`` embeds as a search
    query is embedded, ``"passage"`` as a document's chunks are. ``model``: ``"engram"``
    (the server's), ``"engram/<collection>"`` (that collection's) or a model name."""
    out: list[list[float]] = []
    texts = list(texts)
    for start in range(0, len(texts), EMBED_BATCH):
        part = texts[start : start + EMBED_BATCH]
        body = {"model": model, "input": part, "input_type": kind}
        found = yield Request("POST", path("embeddings"), json=body)
        rows = sorted(found["data"], key=lambda row: row["index"])
        if len(rows) != len(part):
            raise EngramError(f"the server embedded {len(rows)} of {len(part)} texts")
        out.extend([float(x) for x in row["embedding"]] for row in rows)
    return out


# -- answers -----------------------------------------------------------------------------------
def chat(
    question: str,
    *,
    collection: str | Sequence[str] = DEFAULT_COLLECTION,
    conversation_id: str | None = None,
    user_id: str | None = None,
    k: int | None = None,
    mode: SearchMode = "hybrid",
    where: Where | None = None,
    rerank: bool = False,
    stream: bool = False,
) -> Flow[dict[str, Any]]:
    """An answer from a collection (or several, as in :meth:`search`): ``{"text",
    "citations", "model", "extractive"}``; a document's citation names its collection.

    With ``conversation_id`` the question and answer are appended to the conversation;
    with ``user_id`` the user's memories inform the answer. ``k``: passages retrieved (by
    default 8 of 256-token chunks, 16 of a French collection's 128). ``stream=True`` has the
    server stream the answer (no idle connection while a model writes) and assembles it;
    an error in the stream is raised as its exception class.
    """
    body = _chat_body(question, collection, conversation_id, user_id, k, mode, where, rerank)
    if not stream:
        answer: dict[str, Any] = yield Request("POST", path("chat"), json=body)
        return answer
    return _assemble(question, (yield Events(_streamed(body))))


def ask(
    question: str,
    *,
    collection: str | Sequence[str] = DEFAULT_COLLECTION,
    k: int | None = None,
    mode: SearchMode = "hybrid",
    where: Where | None = None,
    rerank: bool = False,
    user_id: str | None = None,
) -> Flow[Answer]:
    """:meth:`engram.Engram.ask` over HTTP: an answer from a collection (or several), as the
    library's :class:`~engram.answers.Answer` with its citations. :meth:`chat` is the same
    call with the server's JSON, and a conversation to append the turn to."""
    body = _chat_body(question, collection, None, user_id, k, mode, where, rerank)
    found: dict[str, Any] = yield Request("POST", path("chat"), json=body)
    return Answer.from_dict(found)


def _assemble(question: str, events: list[tuple[str, Any]]) -> dict[str, Any]:
    """The answer the events of a streamed chat spell; raise the error one of them is."""
    parts: list[str] = []
    result: dict[str, Any] = {"text": "", "citations": [], "model": None, "extractive": False}
    for event, data in events:
        if event == "token":
            parts.append(data.get("text", ""))
        elif event == "citations":
            result["citations"] = data.get("citations", [])
        elif event == "error":
            raise error_from_body(_status(data), {"error": data})
        elif event == "done":
            result["model"] = data.get("model")
            result["extractive"] = bool(data.get("extractive"))
            result["query"] = data.get("query", question)
    result["text"] = "".join(parts)
    return result


def chat_stream(
    question: str,
    *,
    collection: str | Sequence[str] = DEFAULT_COLLECTION,
    conversation_id: str | None = None,
    user_id: str | None = None,
    k: int | None = None,
    mode: SearchMode = "hybrid",
    where: Where | None = None,
    rerank: bool = False,
) -> Request:
    """:meth:`chat` as it is written: ``(event, data)`` tuples, in this order: ``token``
    (``{"text": delta}``) any number of times, then ``citations`` (``{"citations"}``) or
    ``error`` (``{"code", "message", "hint"?}``), then ``done`` (``{"model",
    "extractive", "ok", "query"}``; ``query``: what was searched). A bad request raises
    when the stream is opened, before any event. Iterate to the end, or use it as a context
    manager to close the connection early."""
    body = _chat_body(question, collection, conversation_id, user_id, k, mode, where, rerank)
    return _streamed(body)


def _chat_body(
    question: str,
    collection: str | Sequence[str],
    conversation_id: str | None,
    user_id: str | None,
    k: int | None,
    mode: SearchMode,
    where: Where | None,
    rerank: bool,
) -> dict[str, Any]:
    return {
        "rerank": rerank,
        "question": question,
        "collection": _names(collection),
        "conversation_id": conversation_id,
        "user_id": user_id,
        "k": k,
        "mode": mode,
        "where": where,
    }


def _names(collection: str | Sequence[str]) -> str | list[str]:
    """A collection's name, or a list of names (JSON has no tuples)."""
    return collection if isinstance(collection, str) else list(collection)


def _streamed(body: dict[str, Any]) -> Request:
    return Request(
        "POST", path("chat"), json={**body, "stream": True}, headers={"Accept": "text/event-stream"}
    )


def _status(error: Mapping[str, Any]) -> int:
    # A streamed error has no HTTP status of its own: it is that of its code's class.
    return ERRORS_BY_CODE.get(str(error.get("code")), EngramError).status
