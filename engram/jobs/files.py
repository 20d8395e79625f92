"""Running an ``ingest.file`` job: an uploaded file parsed and ingested after the upload
answered 202 (``POST /v1/collections/{name}/files?async=true``).

The job's payload holds the file's raw bytes (base64), so the worker parses it with the same
loaders as a synchronous upload (:func:`~engram.ingest.loaders.load_bytes`): a PDF keeps its
pages, a markdown file its headings, a JSONL file gives one document per record. A file that
cannot be parsed (a corrupt PDF) raises the loader's :class:`~engram.errors.LoaderError`, a
4xx error that the worker fails the job with at once, keeping the payload for a retry.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import InvalidInput
from .types import Job

if TYPE_CHECKING:
    from ..engine import Engram
    from ..types import IngestReport


class FileProgress(Protocol):
    """The worker's progress callback, told the documents total once the file is parsed."""

    chunks: int  # chunks written so far

    def __call__(self, documents: int, chunks: int) -> None: ...

    def expect(self, total: int) -> None: ...


def run_file(db: Engram, job: Job, progress: FileProgress) -> IngestReport:
    """Parse the job's file and ingest its documents into the job's collection."""
    from ..ingest.loaders import load_bytes  # the parsers are imported on first use

    spec: dict[str, Any] = (job.payload or {}).get("file") or {}
    try:
        data = base64.b64decode(spec["data"], validate=True)
        fmt, key, source = str(spec["format"]), str(spec["key"]), str(spec["source"])
    except (KeyError, TypeError, binascii.Error) as exc:
        raise InvalidInput(
            f"job {job.id!r} holds no readable file ({type(exc).__name__})",
            hint="upload the file again",
        ) from exc
    documents = load_bytes(data, fmt=fmt, key=key, source=source)
    progress.expect(len(documents))
    report = db.add(
        documents, collection=job.collection or "default", tenant=job.tenant, progress=progress
    )
    # Records that failed to parse are done too (they are in the report's errors): the
    # progress ends at n/n.
    progress(len(documents), progress.chunks)
    return report
