"""The one error hierarchy of engram.

Every error raised on purpose by engram derives from :class:`EngramError`. Each class carries
an HTTP status and a stable machine-readable ``code`` so that the CLI, the HTTP server and the
Python client all speak the same language::

    EngramError (500, "internal")
    ├── ConfigError (400, "invalid_config")            a setting has a bad value
    ├── InvalidInput (422, "invalid_input")            a request, query or filter is malformed
    │   ├── QueryTooLong (413, "query_too_long")
    │   └── UnsupportedFormat (415, "unsupported_format")
    ├── NotFound (404, "not_found")
    │   ├── CollectionNotFound (404, "collection_not_found")
    │   └── DocumentNotFound (404, "document_not_found")
    ├── Conflict (409, "conflict")
    │   └── ModelMismatch (409, "model_mismatch")      embedder differs from the collection's
    ├── LoaderError (422, "loader_error")              a file could not be read or parsed
    ├── ModelUnavailable (503, "model_unavailable")    a local model cannot be found or loaded
    ├── MissingDependency (500, "missing_dependency")  an optional extra is not installed
    └── StoreError (500, "store_error")                the database failed
        ├── StoreLocked (503, "store_locked")
        └── MigrationError (500, "migration_error")

Driver errors (``sqlite3``) are translated at one boundary, :func:`engram.store.sqlite.translate`,
with ``raise ... from exc``.
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
    status, code = 400, "invalid_config"


class InvalidInput(EngramError):
    status, code = 422, "invalid_input"


class QueryTooLong(InvalidInput):
    status, code = 413, "query_too_long"


class UnsupportedFormat(InvalidInput):
    status, code = 415, "unsupported_format"


class NotFound(EngramError):
    status, code = 404, "not_found"


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class DocumentNotFound(NotFound):
    code = "document_not_found"


class Conflict(EngramError):
    status, code = 409, "conflict"


class ModelMismatch(Conflict):
    code = "model_mismatch"


class LoaderError(EngramError):
    status, code = 422, "loader_error"


class ModelUnavailable(EngramError):
    status, code = 503, "model_unavailable"


class MissingDependency(EngramError):
    status, code = 500, "missing_dependency"


class StoreError(EngramError):
    status, code = 500, "store_error"


class StoreLocked(StoreError):
    status, code = 503, "store_locked"


class MigrationError(StoreError):
    code = "migration_error"


ERRORS_BY_CODE: dict[str, type[EngramError]] = {
    cls.code: cls
    for cls in [
        EngramError,
        ConfigError,
        InvalidInput,
        QueryTooLong,
        UnsupportedFormat,
        NotFound,
        CollectionNotFound,
        DocumentNotFound,
        Conflict,
        ModelMismatch,
        LoaderError,
        ModelUnavailable,
        MissingDependency,
        StoreError,
        StoreLocked,
        MigrationError,
    ]
}
