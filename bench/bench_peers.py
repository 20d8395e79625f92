"""Index build and keyword search side by side with peers, on the same documents and vectors.

    python bench/bench_peers.py --embed-only --docs 1920       # cache the vectors (model run)
    /tmp/peers/bin/python bench/bench_peers.py --docs 1920     # then the comparison

The peers are bench-only dependencies, kept out of engram's extras, in a virtualenv of their
own (no torch: ``pip install --dry-run`` shows none of them pulls it)::

    python3 -m venv /tmp/peers
    /tmp/peers/bin/pip install lancedb bm25s PyStemmer chromadb==1.5.9 <engram's dependencies>
    PYTHONPATH=. /tmp/peers/bin/python bench/bench_peers.py --docs 1920

(engram's dependencies: the ``dependencies`` list of pyproject.toml, e.g. written out with
``tomllib`` into a requirements file.) A peer that is not installed is left out.

Documents are the first ``--docs`` of a BEIR corpus (``all``: every one), each one text
``title\\ntext`` and one vector: the vectors are embedded once with engram's bundled model
(bge-small-en-v1.5) and cached in ``/tmp/engram-bench-vectors/`` by dataset and count, so
the model costs nothing in any timing and every system indexes the same vectors
(``--vectors random``: seeded random unit vectors instead, for sizes not embedded yet). engram
gets them through an embedder that looks each text's vector up; its "tokenizer" (the model's
part of chunking) counts a document as one token, so each document is one chunk, as the peers
hold one row per document.

Measured in one process, the systems in turn, builds ``--repeat`` times, queries after the
last ``--query-rounds`` builds (medians reported):

* build: wall and CPU seconds from the documents and vectors in memory to a searchable,
  persisted index: engram ``db.add`` (analysis, SQLite writes, BM25 postings, HNSW, index
  files); Chroma ``PersistentClient`` ``add`` in batches; LanceDB ``create_table`` + native
  FTS index; bm25s tokenize + index (keyword only, in memory);
* keyword: p50/p95 ms of one query at 10 and 150 candidates, query analysis included:
  engram's keyword leg (``Searcher.keyword_leg``: analyzer, typo check, BM25), bm25s
  ``tokenize`` + ``retrieve``, LanceDB FTS; the systems alternate query by query so a busy
  machine slows them alike;
* hybrid: p50/p95 ms of ``k=10`` with a precomputed query vector: engram ``Engram.search``
  (both legs, fusion, chunks fetched, highlights), LanceDB hybrid (FTS + vector, RRF).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import engram
from engram.providers import get_embedder
from engram.providers.embedders.base import Embedder, EmbedKind
from engram.search.analyzer import analyzer_for

# LanceDB logs a deprecation warning per query otherwise: that stderr traffic is not its cost.
os.environ.setdefault("LANCEDB_LOG", "error")

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "scifact"
CACHE = Path("/tmp/engram-bench-vectors")
MODEL = "bge-small-en-v1.5"


def load(dataset: Path, docs: int | None, queries: int) -> tuple[list[str], list[str], list[str]]:
    """(ids, texts) of the first ``docs`` documents (None: all) and the first queries."""
    ids, texts = [], []
    with (dataset / "corpus.jsonl").open() as fh:
        for line in fh:
            if docs is not None and len(ids) == docs:
                break
            obj = json.loads(line)
            title, text = (obj.get("title") or "").strip(), obj.get("text") or ""
            ids.append(str(obj["_id"]))
            texts.append(f"{title}\n{text}" if title and not text.startswith(title) else text)
    with (dataset / "queries.jsonl").open() as fh:
        qs = [json.loads(line)["text"] for line in fh][:queries]
    return ids, texts, qs


def cached_vectors(name: str, texts: Sequence[str], kind: EmbedKind) -> np.ndarray:
    """The model's vectors of ``texts``, embedded once and kept in CACHE."""
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]
    path = CACHE / f"{name}-{kind}-{len(texts)}-{digest}.npy"
    if path.exists():
        return np.load(path)
    embedder = get_embedder(MODEL)
    out = np.concatenate(
        [embedder.embed_batch(texts[i : i + 64], kind=kind) for i in range(0, len(texts), 64)]
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


class Precomputed(Embedder):
    """Vectors looked up by text (documents and queries); a text is one token."""

    max_tokens = 8192

    def __init__(self, model_id: str, table: dict[str, np.ndarray], dimension: int) -> None:
        self.model_id, self.table, self.dimension = model_id, table, dimension

    def embed_batch(self, texts: Sequence[str], *, kind: EmbedKind = "passage") -> np.ndarray:
        return np.stack([self.table[t] for t in texts])

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


# -- the systems ------------------------------------------------------------------------------
class Engram:
    name = "engram"

    def __init__(self, ids, texts, vectors, queries, qvectors) -> None:
        table = dict(zip(texts, vectors)) | dict(zip(queries, qvectors))
        self.embedder = Precomputed("bench-" + MODEL, table, vectors.shape[1])
        self.records = [{"id": i, "text": t} for i, t in zip(ids, texts)]

    def build(self, root: Path) -> Callable[[], Any]:
        self.db = engram.open(root, chunk_tokens=8192, chunk_overlap=0, cache_size=0)
        self.db.embedders.install(self.embedder)  # the precomputed vectors: no model timed
        return lambda: self.db.add(self.records, collection="bench")

    def ready(self) -> None:
        self.collection = self.db.store.get_collection("bench")
        self.analyzer = analyzer_for(self.collection)  # as the searcher analyzes its queries

    def keyword(self, query: str, k: int) -> list[Any]:
        terms = self.analyzer.terms(query)
        return self.db.searcher.keyword_leg(self.collection, terms, k)[0]

    def hybrid(self, query: str, k: int) -> list[Any]:
        return self.db.search(query, collection="bench", k=k, mode="hybrid").results

    def close(self) -> None:
        self.db.close()


class Chroma:
    name = "chroma"

    def __init__(self, ids, texts, vectors, queries, qvectors) -> None:
        self.ids, self.texts, self.vectors = ids, texts, vectors

    def build(self, root: Path) -> Callable[[], Any]:
        import chromadb

        self.client = chromadb.PersistentClient(path=str(root))

        def run() -> None:
            col = self.client.create_collection("bench", embedding_function=None)
            step = min(5000, self.client.get_max_batch_size())
            for i in range(0, len(self.ids), step):
                col.add(
                    ids=self.ids[i : i + step],
                    documents=self.texts[i : i + step],
                    embeddings=self.vectors[i : i + step],
                )

        return run

    def close(self) -> None:
        self.client.clear_system_cache()


class Lance:
    name = "lancedb"

    def __init__(self, ids, texts, vectors, queries, qvectors) -> None:
        import pyarrow as pa

        dim = vectors.shape[1]
        self.data = pa.table(
            {
                "id": pa.array(ids),
                "text": pa.array(texts),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim),
            }
        )
        self.qvectors = dict(zip(queries, qvectors))

    def build(self, root: Path) -> Callable[[], Any]:
        import lancedb

        self.db = lancedb.connect(str(root))

        def run() -> None:
            self.table = self.db.create_table("bench", data=self.data)
            self.table.create_fts_index("text", with_position=False)

        return run

    def keyword(self, query: str, k: int) -> list[Any]:
        return self.table.search(query, query_type="fts").limit(k).select(["id"]).to_list()

    def hybrid(self, query: str, k: int) -> list[Any]:
        return (
            self.table.search(query_type="hybrid")
            .vector(self.qvectors[query])
            .text(query)
            .limit(k)
            .select(["id"])
            .to_list()
        )

    def close(self) -> None:
        pass


class BM25S:
    name = "bm25s"

    def __init__(self, ids, texts, vectors, queries, qvectors) -> None:
        import Stemmer

        self.texts, self.stemmer = texts, Stemmer.Stemmer("english")

    def build(self, root: Path) -> Callable[[], Any]:
        import bm25s

        def run() -> None:
            tokens = bm25s.tokenize(
                self.texts, stopwords="en", stemmer=self.stemmer, show_progress=False
            )
            self.retriever = bm25s.BM25()
            self.retriever.index(tokens, show_progress=False)

        return run

    def keyword(self, query: str, k: int) -> list[Any]:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, show_progress=False)
        if not tokens.vocab:
            return []
        k = min(k, len(self.texts))
        docs, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        return docs[0].tolist()

    def close(self) -> None:
        pass


SYSTEMS = {"engram": Engram, "chroma": Chroma, "lancedb": Lance, "bm25s": BM25S}
NEEDS = {"chroma": "chromadb", "lancedb": "lancedb", "bm25s": "bm25s"}


def percentiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "p50": round(statistics.median(ms), 3),
        "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, default=DATA)
    ap.add_argument("--docs", default="1920", help="how many documents, or 'all'")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5, help="builds of each system")
    ap.add_argument("--query-rounds", type=int, default=1, help="of them followed by queries")
    ap.add_argument("--systems", nargs="*", default=list(SYSTEMS))
    ap.add_argument("--embed-only", action="store_true", help="cache the vectors and stop")
    ap.add_argument(
        "--vectors",
        choices=("model", "random"),
        default="model",
        help="model: bge-small's (cached); random: seeded unit vectors, no model run at all",
    )
    args = ap.parse_args()
    n = None if args.docs == "all" else int(args.docs)
    ids, texts, queries = load(args.dataset, n, args.queries)
    name = args.dataset.name
    if args.vectors == "random":
        rng = np.random.default_rng(0)
        vectors, qvectors = (
            (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
            for v in (rng.normal(size=(len(texts), 384)), rng.normal(size=(len(queries), 384)))
        )
    else:
        vectors = cached_vectors(name, texts, "passage")
        qvectors = cached_vectors(name, queries, "query")
    if args.embed_only:
        print(json.dumps({"docs": len(texts), "queries": len(queries), "cached": str(CACHE)}))
        return
    systems = [
        SYSTEMS[s](ids, texts, vectors, queries, qvectors)
        for s in args.systems
        if s not in NEEDS or importlib.util.find_spec(NEEDS[s]) is not None
    ]
    build: dict[str, list[tuple[float, float]]] = {s.name: [] for s in systems}
    keyword: dict[str, dict[int, list[float]]] = {}
    hybrid: dict[str, list[float]] = {}
    for r in range(args.repeat):
        roots = {}
        # Builds one after the other (first one turn by turn), kept for the queries.
        for system in systems[r % len(systems) :] + systems[: r % len(systems)]:
            roots[system.name] = Path(tempfile.mkdtemp(prefix=f"peers-{system.name}-"))
            run = system.build(roots[system.name])
            wall, cpu, _ = timed(run)
            build[system.name].append((wall, cpu))
            if hasattr(system, "ready"):
                system.ready()
        if r < args.repeat - args.query_rounds:
            for system in systems:
                system.close()
                shutil.rmtree(roots[system.name], ignore_errors=True)
            continue
        for system in systems:  # warm-up
            for q in queries[:20]:
                if hasattr(system, "keyword"):
                    system.keyword(q, 150)
                if hasattr(system, "hybrid"):
                    system.hybrid(q, 10)
        calls = [
            (system, what)
            for system in systems
            for what in ("k=10", "k=150", "hybrid")
            if hasattr(system, "hybrid" if what == "hybrid" else "keyword")
        ]
        for i, q in enumerate(queries):  # side by side, query by query, in turns
            for system, what in calls[i % len(calls) :] + calls[: i % len(calls)]:
                t0 = time.perf_counter()
                if what == "hybrid":
                    system.hybrid(q, 10)
                    hybrid.setdefault(system.name, []).append(time.perf_counter() - t0)
                else:
                    system.keyword(q, int(what[2:]))
                    keyword.setdefault(system.name, {}).setdefault(int(what[2:]), []).append(
                        time.perf_counter() - t0
                    )
        for system in systems:
            system.close()
            shutil.rmtree(roots[system.name], ignore_errors=True)
    out: dict[str, Any] = {
        "dataset": name,
        "vectors": args.vectors,
        "docs": len(texts),
        "queries": len(queries),
        "repeat": args.repeat,
        "query_rounds": args.query_rounds,
        "build_s": {
            s: {
                "wall": round(statistics.median(w for w, _ in runs), 3),
                "cpu": round(statistics.median(c for _, c in runs), 3),
                "runs_wall": [round(w, 3) for w, _ in runs],
            }
            for s, runs in build.items()
        },
        "keyword_ms": {
            s: {f"k={k}": percentiles(v) for k, v in ks.items()} for s, ks in keyword.items()
        },
        "hybrid_ms": {s: percentiles(v) for s, v in hybrid.items()},
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
