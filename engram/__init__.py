"""engram: a self-hosted memory and retrieval layer for AI agents and RAG chatbots.

import engram
db = engram.open("./.engram")
db.ingest("docs/")
for hit in db.search("how do I reset a password?").results:
    print(hit.title, hit.score)
"""

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
    StoreError,
    UnsupportedFormat,
)
from .search.searcher import SearchResponse
from .types import Collection, DocumentInfo, IngestReport, SearchResult

__all__ = [
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
    "Settings",
    "StoreError",
    "UnsupportedFormat",
    "open",
]
