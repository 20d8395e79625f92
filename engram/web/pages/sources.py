"""``GET /source/{collection}/{key}?version=&start=&end=``: a cited passage in its document.

A citation (a search result, an answer's source) names a document, the version it was read
from and a character span [start, end) of that version's text. This page shows that
version's whole text with the span marked (``<mark id="cited">``, scrolled into view on
load), its title and metadata: the reader checks the passage in its context. Documents are
bounded by the input limits, so the text is rendered whole; no other document is read.

The URL shape is shared: search results and chat answers link here through
:func:`source_link`, the key URL-quoted (it may hold slashes).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request, Response

from ...errors import InvalidInput
from ...server.deps import DB
from ..auth import Caller, require
from ..render import WebRoute, page

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def source_link(
    collection: str,
    key: str,
    version: int | None = None,
    start: int | None = None,
    end: int | None = None,
) -> str:
    """The source page of document ``key``, at ``version`` with [start, end) marked."""
    url = f"/source/{quote(collection, safe='')}/{quote(key, safe='')}"
    params = [
        (n, v) for n, v in (("version", version), ("start", start), ("end", end)) if v is not None
    ]
    if params:
        url += "?" + "&".join(f"{n}={v}" for n, v in params)
    return url


def cited_span(text: str, start: int | None, end: int | None) -> tuple[int, int] | None:
    """[start, end) when it is a span of ``text``, None when none is asked for;
    InvalidInput for half a span or one outside the text."""
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise InvalidInput(
            "a cited span needs both start and end",
            hint="pass start and end together, e.g. ?start=0&end=120",
        )
    if not 0 <= start < end <= len(text):
        raise InvalidInput(
            f"the span [{start}, {end}) is not within this version's text"
            f" ({len(text):,} characters)",
            hint="the citation may point to another version: check its version number",
        )
    return start, end


@router.get("/source/{collection}/{key:path}")
def source_page(
    request: Request,
    caller: Caller,
    db: DB,
    collection: Annotated[str, Path(min_length=1, max_length=200)],
    key: Annotated[str, Path(min_length=1, max_length=1024)],
    version: Annotated[int | None, Query(ge=1)] = None,
    start: Annotated[int | None, Query(ge=0)] = None,
    end: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    require(caller, "read")
    content = db.document_version(key, version, collection, tenant=caller.principal.tenant)
    span = cited_span(content.text, start, end)
    text = content.text
    before, cited, after = (
        (text, "", "")
        if span is None
        else (
            text[: span[0]],
            text[span[0] : span[1]],
            text[span[1] :],
        )
    )
    return page(
        request,
        caller,
        "sources/source.html",
        title=content.title or content.key,
        doc=content,
        span=span,
        before=before,
        cited=cited,
        after=after,
        current_url=None if content.current else source_link(collection, key),
        knowledge_url=f"/knowledge/{quote(collection, safe='')}/documents/{quote(key, safe='')}",
    )
