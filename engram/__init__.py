"""engram: a self-hosted memory and retrieval layer for AI agents and RAG chatbots.

import engram
db = engram.open("./.engram")
db.ingest("docs/")
for hit in db.search("how do I reset a password?").results:
    print(hit.title, hit.score)
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

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

if _TYPE_CHECKING:
    from .client import Client

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


def __getattr__(name: str) -> _Any:
    # The HTTP client imports httpx (~70 ms): only programs that use it pay for it.
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'engram' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"Client"})
