"""A document's page, ``/knowledge/{collection}/documents/{key}``: its metadata, the
versions it keeps, the changes between two of them (word by word) and restoring one.

The diff the API returns (engram.versions.diff) is a unified diff of lines, for tools; a
person wants to see which words changed, so the page compares the two kept texts itself:
lines first (so unchanged stretches are skipped, with a few lines of context), then the
words of each changed stretch, marked up with ``<ins>`` and ``<del>``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse

from ...errors import InvalidInput
from ...server.deps import DB
from ...types import DocumentContent, VersionDiff
from ...versions import diff as version_diff
from ..auth import Caller, require
from ..render import WebRoute, page
from .knowledge import collection_of

router = APIRouter(route_class=WebRoute, include_in_schema=False)

Kind = Literal["eq", "ins", "del"]
# Beyond this many characters or words a changed stretch is shown as removed then added,
# whole: comparing words is quadratic at worst.
_MAX_WORDS = 4000
_MAX_CHARS = 2_000_000
_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass
class Hunk:
    """A stretch of changes with its context: where it starts in each version (1-based
    lines) and its text as (kind, text) segments."""

    old_line: int
    new_line: int
    segments: list[tuple[Kind, str]]


def _merge(segments: list[tuple[Kind, str]]) -> list[tuple[Kind, str]]:
    out: list[tuple[Kind, str]] = []
    for kind, text in segments:
        if not text:
            continue
        if out and out[-1][0] == kind:
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def _words(old: str, new: str) -> list[tuple[Kind, str]]:
    """A changed stretch word by word (whitespace and punctuation are tokens too)."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    if len(a) > _MAX_WORDS or len(b) > _MAX_WORDS:
        return [("del", old), ("ins", new)]
    out: list[tuple[Kind, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("eq", "".join(a[i1:i2])))
        else:
            out.append(("del", "".join(a[i1:i2])))
            out.append(("ins", "".join(b[j1:j2])))
    return out


def text_diff(old: str, new: str, *, context: int = 3) -> list[Hunk]:
    """The changes from ``old`` to ``new``: hunks of lines with ``context`` unchanged lines
    around each change, the changed lines refined to words. Empty when the texts are equal."""
    if len(old) > _MAX_CHARS or len(new) > _MAX_CHARS:
        raise InvalidInput(
            "these versions are too long to compare here",
            hint="compare them with the API: GET …/documents/{key}/diff",
        )
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    hunks: list[Hunk] = []
    for group in difflib.SequenceMatcher(None, a, b).get_grouped_opcodes(context):
        segments: list[tuple[Kind, str]] = []
        for tag, i1, i2, j1, j2 in group:
            before, after = "".join(a[i1:i2]), "".join(b[j1:j2])
            if tag == "equal":
                segments.append(("eq", before))
            elif tag == "delete":
                segments.append(("del", before))
            elif tag == "insert":
                segments.append(("ins", after))
            else:
                segments.extend(_words(before, after))
        hunks.append(Hunk(group[0][1] + 1, group[0][3] + 1, _merge(segments)))
    return hunks


@dataclass
class Comparison:
    """Two versions compared: title and metadata changes (engram.versions) and the text's."""

    old: DocumentContent
    new: DocumentContent
    changes: VersionDiff
    hunks: list[Hunk]


def _doc_url(collection: str, key: str) -> str:
    return f"/knowledge/{quote(collection, safe='')}/documents/{quote(key, safe='')}"


@router.get("/knowledge/{collection}/documents/{key:path}")
def document_page(
    request: Request,
    caller: Caller,
    db: DB,
    collection: str,
    key: str,
    from_version: Annotated[int | None, Query(alias="from", ge=1)] = None,
    to_version: Annotated[int | None, Query(alias="to", ge=1)] = None,
    restored: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    require(caller, "read")
    tenant = caller.principal.tenant
    coll = collection_of(db, collection, tenant)
    info = db.store.get_document(coll, key)
    versions = db.store.document_versions(coll, key)
    kept = [v.version for v in versions if v.kept]
    comparison = None
    if from_version is not None or to_version is not None:
        if from_version is None or to_version is None:
            raise InvalidInput("choose two versions to compare")
        old = db.document_version(key, from_version, coll.name, tenant=tenant)
        new = db.document_version(key, to_version, coll.name, tenant=tenant)
        comparison = Comparison(
            old, new, version_diff(old, new, context=0), text_diff(old.text, new.text)
        )
    # The pair the form offers first: the two newest kept versions.
    default_from = kept[-2] if len(kept) > 1 else None
    return page(
        request,
        caller,
        "knowledge/document.html",
        title=info.title or info.key,
        coll=coll,
        doc=info,
        versions=list(reversed(versions)),
        kept=list(reversed(kept)),
        selected_from=from_version or default_from,
        selected_to=to_version or info.version,
        comparison=comparison,
        restored=restored,
        url=_doc_url(coll.name, info.key),
    )


@router.post("/knowledge/{collection}/restore")
def restore_version(
    caller: Caller,
    db: DB,
    collection: str,
    key: Annotated[str, Form(min_length=1, max_length=1024)],
    version: Annotated[int, Form(ge=1)],
) -> Response:
    """Make a kept version current again (a new version), as ``POST …:restore``."""
    require(caller, "write")
    coll = collection_of(db, collection, caller.principal.tenant)
    db.restore_version(key, version, coll.name, tenant=caller.principal.tenant)
    return RedirectResponse(f"{_doc_url(coll.name, key)}?restored={version}", status_code=303)
