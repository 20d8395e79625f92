"""Versions you can use: the methods of :class:`engram.Engram` that read, compare, restore
and purge the versions a document keeps (the store keeps each version's text, title,
metadata and chunk spans; see :meth:`engram.store.contract.DocumentStore.document_version`).

A restore writes the old content again as a new version, through the store's ordinary write
path (one transaction that replaces the current chunks in every index). Its chunks are the
old version's, at the same offsets, so their embedded texts are the same and their vectors
come from the embedding cache, which keeps every vector a kept version uses: no model call.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import DocumentNotFound, InvalidInput
from .search.analyzer import analyzer_for
from .store.records import ChunkRecord, ChunkWrite, DocumentWrite, StoredVersion
from .types import (
    Collection,
    ContentChunk,
    DocumentContent,
    DocumentInfo,
    MetadataChange,
    VersionDiff,
)

if TYPE_CHECKING:
    from .config import Settings
    from .embedders import Embedders
    from .store.contract import Store

DEFAULT_COLLECTION = "default"
DEFAULT_TENANT = "default"


class VersionsMixin:
    """The version methods of :class:`engram.Engram`."""

    if TYPE_CHECKING:
        settings: Settings
        store: Store
        embedders: Embedders

        def collection(
            self, name: str = ..., *, tenant: str = ..., counts: bool = ...
        ) -> Collection: ...

    def document_version(
        self,
        key: str,
        version: int | None = None,
        collection: str = DEFAULT_COLLECTION,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> DocumentContent:
        """Document ``key`` as it was at ``version`` (None: the current version): its text,
        title, metadata and chunks with their spans. DocumentNotFound when the document, or
        that version, is not kept (a version written before engram kept texts lists its hash
        only)."""
        coll = self.collection(collection, tenant=tenant, counts=False)
        return self._content(coll, self.store.document_version(coll, key, version))

    def document_text(
        self,
        key: str,
        collection: str = DEFAULT_COLLECTION,
        *,
        version: int | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> str:
        """The text of a document at ``version`` (None: the current one), as it was
        ingested. A current version written before engram kept texts is rebuilt from its
        chunks: overlapping chunks are not repeated, and the whitespace trimmed between two
        chunks comes back as one space, or a blank line where it was longer."""
        return self.document_version(key, version, collection, tenant=tenant).text

    def _content(self, coll: Collection, stored: StoredVersion) -> DocumentContent:
        text = stored.text
        if text is None:
            if not stored.current:
                raise DocumentNotFound(
                    f"version {stored.version} of document {stored.key!r} was written before"
                    " engram kept the text of versions: only its hash is left",
                    hint="versions written since are kept; list them with engram versions list",
                )
            chunks = self.store.document_chunks(coll, stored.key)
            text = text_from_chunks(chunks)
            parts = [
                ContentChunk(i, c.text, c.start, c.end, c.page, c.heading_path)
                for i, c in enumerate(chunks)
            ]
        else:
            parts = [
                ContentChunk(
                    c.ordinal, text[c.start : c.end], c.start, c.end, c.page, c.heading_path
                )
                for c in stored.chunks
            ]
        return DocumentContent(
            key=stored.key,
            collection=coll.name,
            version=stored.version,
            current=stored.current,
            title=stored.title,
            text=text,
            metadata=stored.metadata,
            source=stored.source,
            content_hash=stored.content_hash,
            created_at=stored.created_at,
            chunks=parts,
            restored_from=stored.restored_from,
        )

    def diff_versions(
        self,
        key: str,
        from_version: int | None = None,
        to_version: int | None = None,
        collection: str = DEFAULT_COLLECTION,
        *,
        context: int = 3,
        tenant: str = DEFAULT_TENANT,
    ) -> VersionDiff:
        """How document ``key`` changed from ``from_version`` (None: the version before
        ``to_version``) to ``to_version`` (None: the current one): a unified diff of the
        texts with ``context`` lines around each change, and the title and metadata fields
        that differ."""
        coll = self.collection(collection, tenant=tenant)
        new = self._content(coll, self.store.document_version(coll, key, to_version))
        if from_version is None:
            older = [
                v.version
                for v in self.store.document_versions(coll, key)
                if v.version < new.version
            ]
            if not older:
                raise DocumentNotFound(
                    f"document {key!r} keeps no version before version {new.version}",
                    hint="name both versions: from and to",
                )
            from_version = older[-1]
        old = self._content(coll, self.store.document_version(coll, key, from_version))
        return diff(old, new, context=context)

    def restore_version(
        self,
        key: str,
        version: int,
        collection: str = DEFAULT_COLLECTION,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> DocumentInfo:
        """Make version ``version`` of document ``key`` current again: its content becomes a
        new version (``restored_from`` says which), searched from now on in place of the
        current one. Its chunks' vectors come from the embedding cache (no model call for
        texts already embedded). Nothing is written when the current version already has
        that content. Returns the document as it now is."""
        coll = self.collection(collection, tenant=tenant)
        stored = self.store.document_version(coll, key, version)
        current = self.store.get_document(coll, key)
        if stored.current or stored.content_hash == current.content_hash:
            return current
        content = self._content(coll, stored)
        write, texts = restore_write(content, stored, coll, self.settings)
        for attempt in (1, 2):
            cached = self.store.cached_embeddings(coll.model_id, texts)
            missing = [h for h in texts if h not in cached]
            vectors = dict(zip(missing, self._embed_missing(coll, [texts[h] for h in missing])))
            try:
                self.store.write_documents(coll, [write], vectors)
                break
            except InvalidInput:
                # A purge dropped a vector between the look-up and the write: look again.
                if attempt == 2:
                    raise
        self.store.sync()
        return self.store.get_document(coll, key)

    def _embed_missing(self, coll: Collection, texts: list[str]) -> list[Any]:
        if not texts:
            return []
        embedder = self.embedders.for_collection(coll)  # the collection's own model
        return list(embedder.embed_batch(texts, kind="passage"))

    def purge_versions(
        self,
        collection: str = DEFAULT_COLLECTION,
        *,
        keep: int = 1,
        keys: str | Sequence[str] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> int:
        """Drop the versions of documents (of ``keys``, or every document of the collection)
        beyond their ``keep`` newest (1: all but the current one), with their texts and the
        cached vectors only they used. Returns how many versions were dropped."""
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keep, int) or keep < 1:
            raise InvalidInput(
                f"keep must be at least 1 (the current version), not {keep!r}",
                hint="delete the document to remove every version",
            )
        coll = self.collection(collection, tenant=tenant)
        return self.store.purge_versions(
            coll, keep=keep, keys=list(keys) if keys is not None else None
        )


def restore_write(
    content: DocumentContent, stored: StoredVersion, coll: Collection, settings: Settings
) -> tuple[DocumentWrite, dict[str, str]]:
    """The write that makes ``content`` current again, and the texts to embed of its chunks
    (text hash → text). The chunks are the kept version's, at its offsets, analyzed for the
    keyword index as an ingest would."""
    from .ingest.pipeline import embedding_text, keep_versions, text_hash

    analyzer = analyzer_for(coll)
    chunks: list[ChunkWrite] = []
    texts: dict[str, str] = {}
    for c in content.chunks:
        full = embedding_text(content.title, c.heading_path, c.text)
        h = text_hash(full)
        texts[h] = full
        chunks.append(
            ChunkWrite(
                ordinal=c.ordinal,
                text=c.text,
                start=c.start,
                end=c.end,
                text_hash=h,
                terms=" ".join(analyzer.terms(full)),
                page=c.page,
                heading_path=c.heading_path,
            )
        )
    write = DocumentWrite(
        key=content.key,
        title=content.title,
        content_hash=stored.content_hash,
        chunks=chunks,
        metadata=content.metadata,
        source=content.source,
        text=content.text,
        restored_from=content.version,
        keep_versions=keep_versions(coll, settings),
    )
    return write, texts


def diff(old: DocumentContent, new: DocumentContent, *, context: int = 3) -> VersionDiff:
    """The differences between two versions of one document."""
    lines = difflib.unified_diff(
        old.text.splitlines(keepends=True),
        new.text.splitlines(keepends=True),
        fromfile=f"{old.key}@{old.version}",
        tofile=f"{new.key}@{new.version}",
        n=context,
    )
    text = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    changes: list[MetadataChange] = []
    for name in sorted(old.metadata.keys() | new.metadata.keys()):
        if name not in new.metadata:
            changes.append(MetadataChange(name, "removed", old=old.metadata[name]))
        elif name not in old.metadata:
            changes.append(MetadataChange(name, "added", new=new.metadata[name]))
        elif old.metadata[name] != new.metadata[name]:
            changes.append(
                MetadataChange(name, "changed", old=old.metadata[name], new=new.metadata[name])
            )
    title = (old.title, new.title) if old.title != new.title else None
    return VersionDiff(old.key, old.version, new.version, text, title, changes)


def text_from_chunks(chunks: Sequence[ChunkRecord]) -> str:
    """A document's text put back from its chunks at their offsets (for a version whose text
    was not kept). Overlapping chunks are not repeated; the whitespace trimmed between two
    chunks comes back as one space, or a blank line where it was longer."""
    parts: list[str] = []
    covered = None  # end offset of the text written so far
    for chunk in chunks:
        if covered is not None and chunk.end <= covered:
            continue  # wholly inside the text written (an overlap)
        if covered is None or chunk.start >= covered:
            if covered is not None:
                parts.append(" " if chunk.start - covered <= 1 else "\n\n")
            parts.append(chunk.text)
        else:
            parts.append(chunk.text[covered - chunk.start :])
        covered = chunk.end
    return "".join(parts)
