"""The one error hierarchy of engram.

Every error raised on purpose by engram derives from :class:`EngramError`. Each class carries
an HTTP status and a stable machine-readable ``code`` so that the CLI, the HTTP server and the
Python client all speak the same language::

    EngramError (500, "internal")
    ├── ConfigError (400, "invalid_config")            a setting has a bad value
    ├── InvalidInput (422, "invalid_input")            a request, query or filter is malformed
    │   ├── QueryTooLong (413, "query_too_long")
    │   └── UnsupportedFormat (415, "unsupported_format")
    ├── Unauthorized (401, "unauthorized")             no valid credentials
    ├── Forbidden (403, "forbidden")                   credentials lack the scope
    ├── RateLimited (429, "rate_limited")              too many requests; retry after a delay
    ├── NotFound (404, "not_found")
    │   ├── CollectionNotFound (404, "collection_not_found")
    │   ├── DocumentNotFound (404, "document_not_found")
    │   ├── ConversationNotFound (404, "conversation_not_found")
    │   ├── MemoryNotFound (404, "memory_not_found")
    │   ├── JobNotFound (404, "job_not_found")
    │   └── StateNotFound (404, "state_not_found")      no agent state under that key
    ├── Conflict (409, "conflict")
    │   └── ModelMismatch (409, "model_mismatch")      embedder differs from the collection's
    ├── VersionConflict (412, "version_conflict")      a compare-and-set lost
    ├── LoaderError (422, "loader_error")              a file could not be read or parsed
    ├── ModelUnavailable (503, "model_unavailable")    a local model cannot be found or loaded
    ├── ServerUnavailable (503, "server_unavailable")  the HTTP client cannot reach the server
    ├── MissingDependency (500, "missing_dependency")  an optional extra is not installed
    └── StoreError (500, "store_error")                the database failed
        ├── StoreLocked (503, "store_locked")
        └── MigrationError (500, "migration_error")

Driver errors are translated at one boundary per driver, with ``raise ... from exc``:
``sqlite3`` in :func:`engram.store.sqlite.sql.translate`, ``psycopg`` in
:func:`engram.store.postgres.connection.translate`; so are the network errors of the HTTP client (``httpx``), in
:func:`engram.client.http.translate`. The client raises a server's error response back as the
class above that its ``code`` names.
"""

from __future__ import annotations

from typing import Any


class EngramError(Exception):
    """Root of every engram error."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The one JSON error shape: ``{"error": {"code", "message", "hint", "details"}}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.details:
            body["details"] = self.details
        return {"error": body}

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(EngramError):
    """A setting has a bad value."""

    status, code = 400, "invalid_config"


class InvalidInput(EngramError):
    """A request, query, filter or record is malformed."""

    status, code = 422, "invalid_input"


class QueryTooLong(InvalidInput):
    """The query exceeds ``max_query_chars``."""

    status, code = 413, "query_too_long"


class UnsupportedFormat(InvalidInput):
    """No loader handles this file type."""

    status, code = 415, "unsupported_format"


class Unauthorized(EngramError):
    """No valid credentials were presented (missing, malformed, unknown or revoked key)."""

    status, code = 401, "unauthorized"


class Forbidden(EngramError):
    """The credentials are valid but lack the scope this operation needs."""

    status, code = 403, "forbidden"


class RateLimited(EngramError):
    """Too many requests from one key or address; ``retry_after`` says when to retry."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(
            message, hint=f"retry after {retry_after} s", retry_after=retry_after, **details
        )
        self.retry_after = retry_after


class NotFound(EngramError):
    """The named thing does not exist."""

    status, code = 404, "not_found"


class CollectionNotFound(NotFound):
    """No collection by that name."""

    code = "collection_not_found"


class DocumentNotFound(NotFound):
    """No document with that key in the collection."""

    code = "document_not_found"


class ConversationNotFound(NotFound):
    """No conversation with that id (for this tenant)."""

    code = "conversation_not_found"


class MemoryNotFound(NotFound):
    """No memory with that id (for this tenant), or it was deleted."""

    code = "memory_not_found"


class JobNotFound(NotFound):
    """No background job with that id (for this tenant)."""

    code = "job_not_found"


class StateNotFound(NotFound):
    """No agent state under that namespace and key (for this tenant), or it expired."""

    code = "state_not_found"


class Conflict(EngramError):
    """The request conflicts with the current state."""

    status, code = 409, "conflict"


class ModelMismatch(Conflict):
    """The embedding model differs from the one the collection was built with."""

    code = "model_mismatch"


class VersionConflict(EngramError):
    """A compare-and-set lost: the item's version is not the one the caller expected
    (HTTP 412, as for a failed If-Match)."""

    status, code = 412, "version_conflict"


class LoaderError(EngramError):
    """A file could not be read or parsed."""

    status, code = 422, "loader_error"


class ModelUnavailable(EngramError):
    """A local model cannot be found or loaded."""

    status, code = 503, "model_unavailable"


class ServerUnavailable(EngramError):
    """The HTTP client cannot reach the engram server: refused, unresolvable, dropped or slow."""

    status, code = 503, "server_unavailable"


class MissingDependency(EngramError):
    """An optional extra is not installed."""

    status, code = 500, "missing_dependency"


class StoreError(EngramError):
    """The database failed."""

    status, code = 500, "store_error"


class StoreLocked(StoreError):
    """Another process holds the database lock for too long."""

    status, code = 503, "store_locked"


class MigrationError(StoreError):
    """The database schema cannot be brought to this version."""

    code = "migration_error"


_ALL: list[type[EngramError]] = [
    EngramError,
    ConfigError,
    InvalidInput,
    QueryTooLong,
    UnsupportedFormat,
    Unauthorized,
    Forbidden,
    RateLimited,
    NotFound,
    CollectionNotFound,
    DocumentNotFound,
    ConversationNotFound,
    MemoryNotFound,
    JobNotFound,
    StateNotFound,
    Conflict,
    ModelMismatch,
    VersionConflict,
    LoaderError,
    ModelUnavailable,
    ServerUnavailable,
    MissingDependency,
    StoreError,
    StoreLocked,
    MigrationError,
]
ERRORS_BY_CODE: dict[str, type[EngramError]] = {cls.code: cls for cls in _ALL}
