"""``POST /v1/collections/{name}/files``: upload one file; its extension picks the parser."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from ...errors import UnsupportedFormat
from ...ingest.loaders import load_bytes, supported_extensions
from ..deps import DB, Writer
from ..schemas import IngestReportPublic, error_responses
from .documents import ADDED_OR_NOT, ingest

router = APIRouter(tags=["documents"])


@router.post(
    "/collections/{name}/files",
    operation_id="uploadFile",
    status_code=201,
    responses={**ADDED_OR_NOT, **error_responses(415)},
)
def upload_file(
    name: str,
    file: Annotated[UploadFile, File(description="The file (.txt .md .html .pdf .docx ...).")],
    db: DB,
    principal: Writer,
    response: Response,
    key: Annotated[
        str | None, Form(max_length=1024, description="Document key (default: the file name).")
    ] = None,
) -> IngestReportPublic:
    """Parse an uploaded file and add what it holds: one document for text, markdown, HTML,
    PDF and DOCX; one per record for JSON, JSONL and CSV (keys from the records)."""
    # Browsers send a bare name; other clients may send a path (keep its last part only).
    filename = PurePosixPath((file.filename or "").replace("\\", "/")).name
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix not in supported_extensions():
        raise UnsupportedFormat(
            f"cannot tell the format of {filename or 'an unnamed file'!r} from its extension",
            hint="supported extensions: " + ", ".join(sorted(supported_extensions())),
            supported=sorted(supported_extensions()),
        )
    docs = load_bytes(file.file.read(), fmt=suffix, key=key or filename, source=filename)
    return ingest(db, list(docs), collection=name, tenant=principal.tenant, response=response)
