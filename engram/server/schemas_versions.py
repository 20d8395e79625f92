"""Bodies of the version routes (:mod:`engram.server.routes.versions`): a document as it was
at one version, the difference between two versions, and a purge."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from .schemas import MAX_BATCH
from .schemas_base import RequestModel


class ContentChunkPublic(BaseModel):
    ordinal: int
    text: str
    span: tuple[int, int] = Field(description="[start, end) character offsets in the text.")
    page: int | None
    heading_path: list[str]


class DocumentVersionDetail(BaseModel):
    document: str = Field(description="The document's key.")
    collection: str
    version: int
    current: bool = Field(description="Whether this is the version search sees.")
    title: str
    text: str = Field(description="The whole text of the document at this version.")
    metadata: dict[str, Any]
    source: str
    content_hash: str
    created_at: str
    restored_from: int | None = Field(description="The version this one restored, if any.")
    chunks: list[ContentChunkPublic]


class MetadataChangePublic(BaseModel):
    field: str
    change: Literal["added", "removed", "changed"]
    old: Any = Field(None, description="The value in the older version (removed, changed).")
    new: Any = Field(None, description="The value in the newer version (added, changed).")


class DocumentDiff(BaseModel):
    document: str = Field(description="The document's key.")
    from_version: int
    to_version: int
    text: str = Field(description='Unified diff of the two texts ("" when they are equal).')
    title: tuple[str, str] | None = Field(description="[old, new] title, when it changed.")
    metadata: list[MetadataChangePublic] = Field(description="Metadata fields that differ.")


class VersionPurge(RequestModel):
    keep: int = Field(
        1, ge=1, description="Versions of each document to keep, the current one included."
    )
    keys: list[str] | None = Field(
        None,
        max_length=MAX_BATCH,
        description="Only these documents (default: every document of the collection).",
    )


class VersionPurgeResult(BaseModel):
    deleted: int = Field(description="How many versions were dropped.")
