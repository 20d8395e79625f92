"""``engram import --from-chroma DIR``: collections of a Chroma persistent directory.

The directory is read with the ``chromadb`` package itself (``PersistentClient``), so every
version of Chroma's on-disk layout it understands is understood here. Each Chroma record (id,
document, metadata, embedding) becomes one engram document: key = the Chroma id, text = the
record's document, metadata = its metadata. The engram collection has the Chroma
collection's name and the configured embedding model.

Chunking: a record goes through engram's chunker like any document. A record that fits in
one chunk (the usual case: Chroma data is chunked already) stays one chunk, and keeps
Chroma's vector when that vector comes from the engram model (``--model``, or detected from
the collection's metadata or embedding-function configuration). A longer record is cut into
chunks, and those are embedded by engram's model: Chroma's single vector describes the whole
record, not its pieces. Vectors of any other model are never kept: everything is embedded
again. Records without a document text cannot be searched and are reported as failed.

Like ``engram ingest``, re-running is incremental: unchanged records are skipped.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInput, MissingDependency
from ..ingest.loaders.base import paragraph_spans
from ..ingest.pipeline import Failure, IngestPipeline, Item
from ..new_collection import for_ingest
from ..providers.embedders.base import Embedder, EmbedKind
from ..providers.models import KNOWN_MODELS
from ..types import Block, LoadedDocument
from .batches import Recording, recording
from .report import TransferReport

if TYPE_CHECKING:
    from ..engine import Engram

Progress = Callable[[str], None]

_PAGE = 256  # records read from Chroma at a time
# Metadata keys that may name a collection's embedding model (first found wins).
_MODEL_KEYS = ("engram:model", "embedding_model", "embedding_model_name", "model_name", "model")
# Chroma's built-in embedding functions whose model is implied by their name.
_IMPLIED = {"default": "all-minilm-l6-v2", "onnx_mini_lm_l6_v2": "all-minilm-l6-v2"}


def canonical_model(name: str) -> str:
    """A model name as engram knows it: case-folded, aliases resolved
    ("sentence-transformers/all-MiniLM-L6-v2" -> "all-minilm-l6-v2")."""
    low = name.strip().lower()
    for model in KNOWN_MODELS.values():
        if low == model.name or low in model.aliases or low == (model.hf_repo or "").lower():
            return model.name
    return low


def chroma_model(
    metadata: dict[str, Any] | None, configuration: dict[str, Any] | None
) -> str | None:
    """The embedding model a Chroma collection's vectors come from, if it says so."""
    for key in _MODEL_KEYS:
        value = (metadata or {}).get(key)
        if isinstance(value, str) and value.strip():
            return value
    function = (configuration or {}).get("embedding_function")
    if isinstance(function, dict):
        raw = function.get("config")
        config: dict[str, Any] = raw if isinstance(raw, dict) else {}
        for key in ("model_name", "model"):
            if isinstance(config.get(key), str) and config[key].strip():
                return str(config[key])
        name = function.get("name")
        if isinstance(name, str) and name in _IMPLIED:
            return _IMPLIED[name]
    return None


class _ChromaVectors(Embedder):
    """The engram embedder, except for texts whose Chroma vector is kept: those are answered
    from the record. Registered vectors live in a bounded LRU (a record the pipeline skips
    as unchanged never asks for its vector), so memory stays flat."""

    def __init__(self, inner: Embedder, capacity: int = 8192) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens
        self._known: OrderedDict[str, np.ndarray] = OrderedDict()
        self._capacity = capacity
        self.kept = 0
        self.embedded = 0

    def register(self, text: str, vector: np.ndarray) -> None:
        self._known[text] = vector
        self._known.move_to_end(text)
        while len(self._known) > self._capacity:
            self._known.popitem(last=False)

    def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        missing = []
        for i, text in enumerate(texts):
            vector = self._known.pop(text, None) if kind == "passage" else None
            if vector is None:
                missing.append(i)
            else:
                out[i] = vector
        if missing:
            out[missing] = self.inner.embed_batch([texts[i] for i in missing], kind=kind)
        self.kept += len(texts) - len(missing)
        self.embedded += len(missing)
        return out

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return self.inner.token_offsets(text)

    def token_offsets_batch(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        return self.inner.token_offsets_batch(texts)


def _client(path: Path) -> Any:
    try:
        import chromadb
        from chromadb.config import Settings as ChromaSettings
    except ImportError as exc:
        raise MissingDependency(
            "importing from Chroma needs the chromadb package", hint='pip install "engram[chroma]"'
        ) from exc
    if not (path / "chroma.sqlite3").is_file():
        raise InvalidInput(
            f"{path} is not a Chroma persistent directory (no chroma.sqlite3 in it)",
            hint="pass the path given to chromadb.PersistentClient(path=...)",
        )
    return chromadb.PersistentClient(
        path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
    )


def import_chroma(
    db: Engram,
    path: str | Path,
    *,
    collections: Sequence[str] | None = None,
    model: str | None = None,
    tenant: str = "default",
    progress: Progress | None = None,
) -> TransferReport:
    """Import every collection of the Chroma directory ``path`` (or those named), each into
    the engram collection of the same name. ``model``: the embedding model Chroma's vectors
    come from, when the collections do not say."""
    started = time.perf_counter()
    root = Path(path)
    client = _client(root)
    report = TransferReport("import from chroma", str(root))
    say = progress or (lambda _: None)
    available = sorted(c.name for c in client.list_collections())
    names = list(dict.fromkeys(collections)) if collections else available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise InvalidInput(
            f"the Chroma directory has no collection {unknown[0]!r}",
            hint=f"its collections: {', '.join(available) or 'none'}",
        )
    with recording(db.store, tenant=tenant, kind="chroma", source=str(root)) as batch:
        per_collection = _import_all(db, client, names, model, batch, report, say)
    report.extra["batch"] = batch.id
    report.skipped = +report.skipped  # drop zero counts
    report.extra["collections"] = per_collection
    report.seconds = time.perf_counter() - started
    return report


def _import_all(
    db: Engram,
    client: Any,
    names: list[str],
    model: str | None,
    batch: Recording,
    report: TransferReport,
    say: Progress,
) -> list[dict[str, Any]]:
    tenant = batch.tenant
    per_collection = []
    for name in names:
        say(f"chroma collection {name}")
        col = client.get_collection(name)
        source_model = model or chroma_model(col.metadata, _configuration(col))
        # As in Engram.ingest: a new collection's language, and so its model, is detected
        # from its first texts (read once more below, with their vectors if they are kept).
        head = list(itertools.islice(_items(col, name, None), 64))
        first = [d for d in head if isinstance(d, LoadedDocument)]
        batch.collection(name)
        collection = for_ingest(
            db.store,
            db.embedders,
            db.settings,
            name,
            first,
            language=None,
            model=None,
            tenant=tenant,
        )
        engram_model = db.embedders.for_collection(collection)
        keep = source_model is not None and canonical_model(source_model) == canonical_model(
            engram_model.model_id
        )
        embedder = _ChromaVectors(engram_model)
        items = _items(col, name, embedder if keep else None)
        ingest = IngestPipeline(db.store, db.settings, embedder).run(
            collection, items, batch=batch.id
        )
        batch.counts.update(added=ingest.added, updated=ingest.updated)
        per_collection.append(
            {
                "collection": name,
                "records": col.count(),
                "model": source_model,
                "vectors_kept": embedder.kept,
                "chunks_embedded": embedder.embedded,
                **ingest.to_dict(),
            }
        )
        report.counts["collections"] += 1
        report.counts["documents"] += ingest.added + ingest.updated
        report.counts["vectors kept"] += embedder.kept
        report.counts["chunks embedded"] += embedder.embedded
        report.skipped["documents (unchanged)"] += ingest.unchanged
        report.skipped["failed"] += ingest.failed
        report.notes += [f"{name}: {source}: {reason}" for source, reason in ingest.errors[:20]]
        if not keep:
            report.notes.append(
                f"{name}: vectors of {source_model or 'an unknown model'} were not kept;"
                f" texts were embedded with {engram_model.model_id}"
                + ("" if source_model else " (name the Chroma model with --model)")
            )
    return per_collection


def _configuration(col: Any) -> dict[str, Any] | None:
    try:
        value = col.configuration_json
    except Exception:  # noqa: BLE001 - older chromadb versions have no configuration
        return None
    return value if isinstance(value, dict) else None


def _items(col: Any, name: str, vectors: _ChromaVectors | None) -> Iterator[Item]:
    """The records of a Chroma collection as documents, page by page (ids first: Chroma
    pages by offset, and fetching by id keeps pages stable)."""
    ids: list[str] = col.get(include=[])["ids"]
    include = ["documents", "metadatas"] + (["embeddings"] if vectors is not None else [])
    for i in range(0, len(ids), _PAGE):
        page = ids[i : i + _PAGE]
        got = col.get(ids=page, include=include)
        rows = {rid: n for n, rid in enumerate(got["ids"])}
        for rid in page:
            n = rows.get(rid)
            text = got["documents"][n] if n is not None else None
            source = f"chroma:{name}/{rid}"
            if not isinstance(text, str) or not text.strip():
                yield Failure(source, "the record has no document text", (rid,))
                continue
            assert n is not None
            text = text.strip()
            metadata = dict(got["metadatas"][n] or {})
            if vectors is not None:
                vector = np.asarray(got["embeddings"][n], dtype=np.float32)
                if vector.shape != (vectors.dimension,):
                    raise InvalidInput(
                        f"Chroma collection {name!r} has {vector.shape[-1]}-d vectors, the"
                        f" model {vectors.model_id!r} makes {vectors.dimension}-d ones",
                        hint="--model names the wrong model for these vectors",
                    )
                vectors.register(text, vector)
            blocks = [Block(a, b) for a, b in paragraph_spans(text)]
            yield LoadedDocument(
                key=rid, text=text, title="", metadata=metadata, blocks=blocks, source=source
            )
