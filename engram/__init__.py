"""engram: a self-hosted memory and retrieval layer for AI agents and RAG chatbots.

import engram
db = engram.open("./.engram")
db.ingest("docs/")
for hit in db.search("how do I reset a password?").results:
    print(hit.title, hit.score)
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from .lazy import exports as _exports

if _TYPE_CHECKING:
    from .client import AsyncClient, Client
    from .config import Settings
    from .engine import Engram, open
    from .errors import (
        CollectionNotFound,
        ConfigError,
        DocumentNotFound,
        EngramError,
        InvalidInput,
        LoaderError,
        ModelMismatch,
        ModelUnavailable,
        NotFound,
        QueryTooLong,
        ServerUnavailable,
        StoreError,
        UnsupportedFormat,
    )
    from .search.searcher import SearchResponse
    from .types import Collection, DocumentInfo, IngestReport, SearchResult

__all__ = [
    "AsyncClient",
    "Client",
    "Collection",
    "CollectionNotFound",
    "ConfigError",
    "DocumentInfo",
    "DocumentNotFound",
    "Engram",
    "EngramError",
    "IngestReport",
    "InvalidInput",
    "LoaderError",
    "ModelMismatch",
    "ModelUnavailable",
    "NotFound",
    "QueryTooLong",
    "SearchResponse",
    "SearchResult",
    "ServerUnavailable",
    "Settings",
    "StoreError",
    "UnsupportedFormat",
    "open",
]

# Each public name is imported from its module on first use (PEP 562): `import engram` (and
# so `engram --help`, whose package this is) loads neither pydantic nor numpy nor the engine,
# which cost ~0.3 s before any work. `from engram import Engram` works as before.
_SOURCES = {
    # httpx (~70 ms): only programs that use the HTTP client pay for it
    **dict.fromkeys(["AsyncClient", "Client"], ".client"),
    "Settings": ".config",
    "Engram": ".engine",
    "open": ".engine",
    "SearchResponse": ".search.searcher",
    **dict.fromkeys(["Collection", "DocumentInfo", "IngestReport", "SearchResult"], ".types"),
    **dict.fromkeys(
        [
            "CollectionNotFound",
            "ConfigError",
            "DocumentNotFound",
            "EngramError",
            "InvalidInput",
            "LoaderError",
            "ModelMismatch",
            "ModelUnavailable",
            "NotFound",
            "QueryTooLong",
            "ServerUnavailable",
            "StoreError",
            "UnsupportedFormat",
        ],
        ".errors",
    ),
}


__getattr__, __dir__ = _exports(__name__, _SOURCES, globals(), __all__)
