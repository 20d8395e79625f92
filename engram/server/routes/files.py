"""``POST /v1/collections/{name}/files``: upload one file; its extension picks the parser.

By default the file is parsed and ingested during the request, which answers with the
report. With ``?async=true`` the request only checks the file (its extension; its size, like
any request, against the request size limit) and queues an ``ingest.file`` background job
holding the file's bytes: the answer is 202 with the job and a ``Location: /v1/jobs/{id}`` to
poll, and a worker of any process parses and ingests it (:mod:`engram.jobs.files`).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse

from ...errors import UnsupportedFormat
from ...ingest.loaders import load_bytes, supported_extensions
from ...jobs import enqueue_file
from ..deps import DB, Writer
from ..schemas import IngestReportPublic, JobPublic, error_responses
from .documents import ADDED_OR_NOT, ingest

router = APIRouter(tags=["documents"])


@router.post(
    "/collections/{name}/files",
    operation_id="uploadFile",
    status_code=201,
    response_model=IngestReportPublic,
    responses={
        **ADDED_OR_NOT,
        **error_responses(415),
        202: {
            "model": JobPublic,
            "description": "Queued as a background job (async=true): poll the Location header"
            " (/v1/jobs/{id}).",
        },
    },
)
def upload_file(
    name: str,
    file: Annotated[UploadFile, File(description="The file (.txt .md .html .pdf .docx ...).")],
    db: DB,
    principal: Writer,
    request: Request,
    response: Response,
    key: Annotated[
        str | None, Form(max_length=1024, description="Document key (default: the file name).")
    ] = None,
    run_async: Annotated[
        bool,
        Query(
            alias="async",
            description="Parse and ingest in a background job: answer 202 with the job at once.",
        ),
    ] = False,
) -> IngestReportPublic | JSONResponse:
    """Parse an uploaded file and add what it holds: one document for text, markdown, HTML,
    PDF and DOCX; one per record for JSON, JSONL and CSV (keys from the records).

    201 when a document was added, 200 otherwise. With the query parameter ``async=true``
    the file is only checked (extension; size up to the request size limit) and queued: 202
    with an ``ingest.file`` job whose progress counts the file's documents once it is parsed,
    whose result is the same report, and which fails with the parser's message when the file
    cannot be read (a corrupt PDF); ``POST /v1/jobs/{id}:retry`` runs a failed one again."""
    # Browsers send a bare name; other clients may send a path (keep its last part only).
    filename = PurePosixPath((file.filename or "").replace("\\", "/")).name
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in supported_extensions():
        raise UnsupportedFormat(
            f"cannot tell the format of {filename or 'an unnamed file'!r} from its extension",
            hint="supported extensions: " + ", ".join(sorted(supported_extensions())),
            supported=sorted(supported_extensions()),
        )
    data = file.file.read()
    if not run_async:
        docs = load_bytes(data, fmt=suffix, key=key or filename, source=filename)
        return ingest(db, list(docs), collection=name, tenant=principal.tenant, response=response)
    job = enqueue_file(
        db.store,
        data,
        fmt=suffix,
        key=key or filename,
        source=filename,
        collection=name,
        tenant=principal.tenant,
        key_id=principal.key_id,
    )
    worker = getattr(request.app.state, "jobs", None)
    if worker is not None:
        worker.wake()
    return JSONResponse(
        JobPublic.of(job).model_dump(mode="json"),
        status_code=202,
        headers={"Location": f"/v1/jobs/{job.id}"},
    )
