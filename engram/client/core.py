""":class:`Client`: the library API of :class:`engram.Engram`, over the HTTP API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..errors import (
    ERRORS_BY_CODE,
    ConfigError,
    DocumentNotFound,
    EngramError,
    InvalidInput,
    LoaderError,
)
from ..ingest.items import items_from_records
from ..ingest.sources import iter_files
from ..search.searcher import SearchResponse
from ..store.records import DocumentVersion, Where
from ..types import Collection, DocumentInfo, IngestReport, LoadedDocument, SearchMode
from . import convert
from .convert import from_json
from .http import EventStream, Http, error_from_body, path
from .memory import MemoryClient

DEFAULT_COLLECTION = "default"
# A batch of documents stays under the server's limits: 1,000 documents, 10 MiB of body.
BATCH_DOCUMENTS = 1000
BATCH_BYTES = 8 * 1024 * 1024


@dataclass(slots=True)
class RemoteSearchResponse(SearchResponse):
    """A :class:`~engram.search.searcher.SearchResponse` from the server, plus its opaque
    ``next_cursor``: pass it back as ``search(..., cursor=)`` for the next page (None on the
    last one). ``next_offset`` is known only when the page was asked for by ``offset``."""

    next_cursor: str | None = None


class Client:
    """An engram server, used like the library: ``Client(url, api_key)`` has the methods of
    :class:`engram.Engram` and returns the same types, raising the same exception classes.

    ``transport`` is an ``httpx`` transport (tests, proxies, retries); a server that cannot be
    reached raises :class:`~engram.errors.ServerUnavailable`. The tenant is the API key's.
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float | None = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ConfigError(f"invalid server URL {url!r}: {exc}", hint=_URL_HINT) from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"invalid server URL {url!r}", hint=_URL_HINT)
        self.url = url.rstrip("/")
        self._http = Http(self.url, api_key, timeout=timeout, transport=transport)
        self.memory = MemoryClient(self._http)
        """Conversations and long-term memories (the methods of ``Engram.memory``)."""

    # -- collections ---------------------------------------------------------------------------
    def collections(self) -> list[Collection]:
        """Every collection of the key's tenant."""
        return [
            from_json(Collection, c) for c in self._http.call("GET", path("collections"))["data"]
        ]

    def collection(self, name: str = DEFAULT_COLLECTION) -> Collection:
        """One collection; raises CollectionNotFound."""
        return from_json(Collection, self._http.call("GET", path("collections", name)))

    def delete_collection(self, name: str) -> None:
        """Delete a collection and every trace of its documents (admin scope)."""
        self._http.call("DELETE", path("collections", name))

    # -- ingestion -----------------------------------------------------------------------------
    def add(
        self,
        documents: Iterable[Mapping[str, Any] | LoadedDocument],
        *,
        collection: str = DEFAULT_COLLECTION,
    ) -> IngestReport:
        """Ingest documents given as ``{"id", "text", "title"?, "metadata"?}`` dicts (or
        :class:`~engram.types.LoadedDocument`), sent in batches; one report for all."""
        started = time.perf_counter()
        total = IngestReport()
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
                convert.merge(total, self._add_batch(batch, collection))
                batch, size = [], 0
            batch.append(record)
            size += length
        if batch:
            convert.merge(total, self._add_batch(batch, collection))
        total.seconds = time.perf_counter() - started
        return total

    def _add_batch(self, batch: list[dict[str, Any]], collection: str) -> IngestReport:
        url = path("collections", collection) + "/documents:batch"
        body = self._http.call("POST", url, json={"documents": batch})
        if "job_id" in body:  # 202: a large batch runs as a background job
            body = self._wait_for_job(body)
        return convert.report(body)

    def _wait_for_job(self, job: dict[str, Any]) -> Any:
        """The ingestion report of a background job, polled until it finishes."""
        delay = 0.05
        while job["status"] not in ("succeeded", "failed"):
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
            job = self._http.call("GET", path("jobs", job["job_id"]))
        if job["status"] == "failed" or job.get("result") is None:
            raise EngramError(
                f"ingestion job {job['job_id']} failed: {job.get('error') or 'no reason given'}",
                hint=f"GET /v1/jobs/{job['job_id']} has its details",
                job_id=job["job_id"],
            )
        return job["result"]

    def ingest(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        collection: str = DEFAULT_COLLECTION,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> IngestReport:
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
                    report = self._upload(file, key, collection)
                except (LoaderError, InvalidInput) as exc:  # this file only
                    report = IngestReport(failed=1, errors=[(str(file), str(exc))])
                convert.merge(total, report)
        total.seconds = time.perf_counter() - started
        return total

    def _upload(self, file: Path, key: str, collection: str) -> IngestReport:
        url = path("collections", collection, "files")
        with file.open("rb") as handle:
            body = self._http.call(
                "POST", url, files={"file": (file.name, handle)}, data={"key": key}
            )
        return convert.report(body)

    # -- documents -----------------------------------------------------------------------------
    def documents(
        self,
        collection: str = DEFAULT_COLLECTION,
        *,
        limit: int | None = 100,
        where: Where | None = None,
    ) -> list[DocumentInfo]:
        """The documents of a collection in key order: at most ``limit`` (None: all)."""
        return list(self.iter_documents(collection, where=where, limit=limit))

    def iter_documents(
        self,
        collection: str = DEFAULT_COLLECTION,
        *,
        where: Where | None = None,
        limit: int | None = None,
        page_size: int = 100,
    ) -> Iterator[DocumentInfo]:
        """The documents of a collection in key order, fetched lazily ``page_size`` at a
        time, following the server's cursors."""
        params = {"where": json.dumps(where) if where is not None else None}
        url = path("collections", collection, "documents")
        for body in self._http.pages(url, params, limit, page_size=page_size):
            yield from_json(DocumentInfo, body)

    def document(self, key: str, collection: str = DEFAULT_COLLECTION) -> DocumentInfo:
        """One document; raises DocumentNotFound (or CollectionNotFound)."""
        return from_json(DocumentInfo, self._document(key, collection))

    def versions(self, key: str, collection: str = DEFAULT_COLLECTION) -> list[DocumentVersion]:
        """Every version of a document, oldest first."""
        return [from_json(DocumentVersion, v) for v in self._document(key, collection)["versions"]]

    def _document(self, key: str, collection: str) -> Any:
        return self._http.call("GET", path("collections", collection, "documents", key=key))

    def delete(self, keys: str | Sequence[str], *, collection: str = DEFAULT_COLLECTION) -> int:
        """Delete documents by key from every index; returns how many existed."""
        if isinstance(keys, str):
            keys = [keys]
        if not keys:
            self.collection(collection)  # a missing collection still raises
            return 0
        deleted = 0
        for key in keys:
            url = path("collections", collection, "documents", key=key)
            try:
                self._http.call("DELETE", url)
            except DocumentNotFound:
                continue
            deleted += 1
        return deleted

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        k: int = 10,
        offset: int = 0,
        cursor: str | None = None,
        mode: SearchMode = "hybrid",
        where: Where | None = None,
        rerank: bool = False,
        highlight: bool = True,
    ) -> RemoteSearchResponse:
        """Search a collection; ``response.results`` holds the chunks, best first, and
        ``response.next_cursor`` (as ``cursor=``) fetches the next page."""
        body: dict[str, Any] = {
            "query": query,
            "collection": collection,
            "k": k,
            "mode": mode,
            "where": where,
            "rerank": rerank,
            "highlight": highlight,
        }
        if cursor is not None:
            body["cursor"] = cursor
        if offset:
            body["offset"] = offset
        found = self._http.call("POST", path("search"), json=body)
        next_cursor = found.get("next_cursor")
        return RemoteSearchResponse(
            results=[convert.search_result(r) for r in found["data"]],
            mode=found["mode"],
            next_offset=offset + k if next_cursor and cursor is None else None,
            timings_ms=dict(found.get("timings_ms") or {}),
            expansions=dict(found.get("expansions") or {}),
            next_cursor=next_cursor,
        )

    # -- answers -------------------------------------------------------------------------------
    def chat(
        self,
        question: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        conversation_id: str | None = None,
        user_id: str | None = None,
        k: int = 8,
        mode: SearchMode = "hybrid",
        where: Where | None = None,
        rerank: bool = False,
        stream: bool = False,
    ) -> dict[str, Any]:
        """An answer from a collection: ``{"text", "citations", "model", "extractive"}``.

        With ``conversation_id`` the question and answer are appended to the conversation;
        with ``user_id`` the user's memories inform the answer. ``stream=True`` has the
        server stream the answer (no idle connection while a model writes) and assembles it;
        an error in the stream is raised as its exception class.
        """
        options = _chat_body(question, collection, conversation_id, user_id, k, mode, where, rerank)
        if not stream:
            answer: dict[str, Any] = self._http.call("POST", path("chat"), json=options)
            return answer
        parts: list[str] = []
        result: dict[str, Any] = {"text": "", "citations": [], "model": None, "extractive": False}
        with self._stream(options) as events:
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
        self,
        question: str,
        *,
        collection: str = DEFAULT_COLLECTION,
        conversation_id: str | None = None,
        user_id: str | None = None,
        k: int = 8,
        mode: SearchMode = "hybrid",
        where: Where | None = None,
        rerank: bool = False,
    ) -> EventStream:
        """:meth:`chat` as it is written: ``(event, data)`` tuples, in this order: ``token``
        (``{"text": delta}``) any number of times, then ``citations`` (``{"citations"}``) or
        ``error`` (``{"code", "message", "hint"?}``), then ``done`` (``{"model",
        "extractive", "ok", "query"}``; ``query``: what was searched). A bad request raises here, before any event. Iterate to the
        end, or use it as a context manager to close the connection early."""
        options = _chat_body(question, collection, conversation_id, user_id, k, mode, where, rerank)
        return self._stream(options)

    def _stream(self, body: dict[str, Any]) -> EventStream:
        response = self._http.open_stream(
            "POST", path("chat"), json={**body, "stream": True}, headers=_SSE
        )
        return EventStream(response, self._http)

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the client's connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


_URL_HINT = "pass the server's base URL, e.g. engram.Client('http://127.0.0.1:8000')"
_SSE = {"Accept": "text/event-stream"}


def _chat_body(
    question: str,
    collection: str,
    conversation_id: str | None,
    user_id: str | None,
    k: int,
    mode: SearchMode,
    where: Where | None,
    rerank: bool,
) -> dict[str, Any]:
    return {
        "rerank": rerank,
        "question": question,
        "collection": collection,
        "conversation_id": conversation_id,
        "user_id": user_id,
        "k": k,
        "mode": mode,
        "where": where,
    }


def _status(error: Mapping[str, Any]) -> int:
    # A streamed error has no HTTP status of its own: it is that of its code's class.
    return ERRORS_BY_CODE.get(str(error.get("code")), EngramError).status
