"""engram: a self-hosted memory and retrieval layer for AI agents and RAG chatbots.

import engram
db = engram.open("./.engram")
db.ingest("docs/")
for hit in db.search("how do I reset a password?").results:
    print(hit.title, hit.score)
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
    from .client import Client
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
    "Client": ".client",  # httpx (~70 ms): only programs that use the HTTP client pay for it
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


def __getattr__(name: str) -> _Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'engram' has no attribute {name!r}")
    value = getattr(_import_module(source, __name__), name)
    globals()[name] = value  # the next access is a plain attribute lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
