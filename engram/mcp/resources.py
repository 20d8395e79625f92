"""Documents as MCP resources: ``engram://collections/{collection}/documents/{key}``, the
document's text as indexed. The listing walks the caller's collections by name and each one's
documents by key, a page at a time; its cursor is the position to resume from.

Collection names and keys are percent-encoded in a URI (a key may hold ``/``); a URI read
back may also spell the key's slashes as they are: everything after ``/documents/`` is the key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from ..errors import InvalidInput

if TYPE_CHECKING:
    from .tools import Caller

SCHEME = "engram://collections/"
TEMPLATE = SCHEME + "{collection}/documents/{key}"
PAGE = 100  # documents per page of the listing


@dataclass(frozen=True, slots=True)
class DocumentResource:
    uri: str
    name: str  # the key
    title: str
    description: str


def document_uri(collection: str, key: str) -> str:
    return f"{SCHEME}{quote(collection, safe='')}/documents/{quote(key, safe='')}"


def parse_uri(uri: str) -> tuple[str, str]:
    """(collection, key) of a document URI; InvalidInput for any other URI."""
    rest = uri.removeprefix(SCHEME)
    collection, sep, key = rest.partition("/documents/")
    if rest == uri or not sep or not collection or not key or "/" in collection:
        raise InvalidInput(
            f"not an engram document URI: {uri!r}",
            hint=f"document URIs look like {TEMPLATE}",
        )
    return unquote(collection), unquote(key)


def _cursor(collection: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([collection, offset]).encode()).decode()


def _position(cursor: str | None) -> tuple[str, int]:
    if not cursor:
        return "", 0
    try:
        collection, offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if isinstance(collection, str) and isinstance(offset, int) and offset >= 0:
            return collection, offset
    except ValueError:
        pass
    raise InvalidInput("invalid cursor", hint="pass the nextCursor of the previous listing")


def list_documents(caller: Caller, cursor: str | None) -> tuple[list[DocumentResource], str | None]:
    """A page of the caller's documents as resources, and the cursor of the next page."""
    db, tenant = caller.db, caller.principal.tenant
    start, offset = _position(cursor)
    found: list[DocumentResource] = []
    for name in sorted(c.name for c in db.collections(tenant=tenant)):
        if name < start:
            continue
        if len(found) == PAGE:
            return found, _cursor(name, 0)
        skip = offset if name == start else 0
        room = PAGE - len(found)
        docs = db.documents(name, limit=room + 1, offset=skip, tenant=tenant)
        found += [
            DocumentResource(
                document_uri(name, doc.key),
                doc.key,
                doc.title or doc.key,
                f"Document {doc.key!r} of collection {name!r} (version {doc.version})",
            )
            for doc in docs[:room]
        ]
        if len(docs) > room:
            return found, _cursor(name, skip + room)
    return found, None


def read_document(caller: Caller, uri: str) -> str:
    """The text of the document a URI names."""
    collection, key = parse_uri(uri)
    return caller.db.document_text(key, collection, tenant=caller.principal.tenant)
