"""Read a dataset in BEIR format::

    <root>/corpus.jsonl        {"_id": ..., "title": ..., "text": ..., "metadata": {...}}
    <root>/queries.jsonl       {"_id": ..., "text": ..., ...}
    <root>/qrels/<split>.tsv   query-id <TAB> corpus-id <TAB> score   (header line optional)

Every malformed line is reported as an :class:`~engram.errors.InvalidInput` naming the file
and the 1-based line number. The corpus is streamed, never held in memory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram.errors import InvalidInput
from engram.types import LoadedDocument

__all__ = ["BeirDataset", "iter_corpus", "load_beir", "load_qrels", "load_queries"]

_QRELS_HEADER = ("query-id", "corpus-id", "score")


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise InvalidInput(
            f"BEIR {what} not found: {path}",
            hint="a BEIR dataset directory holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv",
            path=str(path),
        )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(lineno, line)`` for the non-blank lines of a UTF-8 text file."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                # decoded line by line so that a bad byte is reported on its own line
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidInput(
                    f"{_where(path, lineno)}: not valid UTF-8 ({exc.reason})",
                    path=str(path),
                    line=lineno,
                ) from exc
            if line.strip():
                yield lineno, line.rstrip("\r\n")


def _json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"{_where(path, lineno)}: invalid JSON ({exc.msg})", path=str(path), line=lineno
            ) from exc
        if not isinstance(obj, dict):
            raise InvalidInput(
                f"{_where(path, lineno)}: expected a JSON object, got {type(obj).__name__}",
                path=str(path),
                line=lineno,
            )
        yield lineno, obj


def _id_of(obj: dict[str, Any], path: Path, lineno: int) -> str:
    value = obj.get("_id")
    # some exports write numeric ids; BEIR ids are strings everywhere else
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise InvalidInput(
            f'{_where(path, lineno)}: missing or invalid "_id"', path=str(path), line=lineno
        )
    return value


def _str_field(obj: dict[str, Any], key: str, path: Path, lineno: int, default: str | None) -> str:
    value = obj.get(key)
    if value is None and default is not None:
        value = default
    if not isinstance(value, str):
        raise InvalidInput(
            f'{_where(path, lineno)}: "{key}" is missing or not a string',
            path=str(path),
            line=lineno,
        )
    return value


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a qrels TSV into ``{query_id: {doc_id: relevance}}`` (graded, may be 0 or negative).

    The ``query-id corpus-id score`` header is optional. The 4-column TREC layout
    ``query-id iteration corpus-id score`` is accepted too. A pair judged twice with different
    scores is an error.
    """
    path = Path(path)
    _require_file(path, "qrels file")
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in _lines(path):
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) == 4:
            fields = [fields[0], fields[2], fields[3]]
        if len(fields) != 3:
            raise InvalidInput(
                f"{_where(path, lineno)}: expected 3 tab-separated columns "
                f"(query-id, corpus-id, score), got {len(fields)}",
                path=str(path),
                line=lineno,
            )
        qid, doc_id, raw = (f.strip() for f in fields)
        if not qrels and tuple(f.lower() for f in (qid, doc_id, raw)) == _QRELS_HEADER:
            continue
        try:
            score = int(raw)
        except ValueError:
            raise InvalidInput(
                f"{_where(path, lineno)}: score must be an integer, got {raw!r}",
                path=str(path),
                line=lineno,
            ) from None
        if not qid or not doc_id:
            raise InvalidInput(f"{_where(path, lineno)}: empty id", path=str(path), line=lineno)
        judged = qrels.setdefault(qid, {})
        if judged.get(doc_id, score) != score:
            raise InvalidInput(
                f"{_where(path, lineno)}: ({qid}, {doc_id}) judged {judged[doc_id]} "
                f"earlier and {score} here",
                path=str(path),
                line=lineno,
            )
        judged[doc_id] = score
    if not qrels:
        raise InvalidInput(f"{path}: no relevance judgements", path=str(path))
    return qrels


def load_queries(path: str | Path, ids: Collection[str] | None = None) -> dict[str, str]:
    """Read queries.jsonl into ``{query_id: text}``, keeping only ``ids`` when given."""
    path = Path(path)
    _require_file(path, "queries file")
    queries: dict[str, str] = {}
    for lineno, obj in _json_objects(path):
        qid = _id_of(obj, path, lineno)
        if ids is not None and qid not in ids:
            continue
        if qid in queries:
            raise InvalidInput(
                f"{_where(path, lineno)}: duplicate query id {qid!r}", path=str(path), line=lineno
            )
        queries[qid] = _str_field(obj, "text", path, lineno, None)
    return queries


def iter_corpus(path: str | Path) -> Iterator[LoadedDocument]:
    """Stream corpus.jsonl as :class:`~engram.types.LoadedDocument` objects.

    ``key`` is the BEIR ``_id``; ``title`` and ``metadata`` are optional in the file. A doc id
    that appears twice is an error (an ingest would silently keep only one).
    """
    path = Path(path)
    _require_file(path, "corpus file")
    seen: set[str] = set()
    for lineno, obj in _json_objects(path):
        doc_id = _id_of(obj, path, lineno)
        if doc_id in seen:
            raise InvalidInput(
                f"{_where(path, lineno)}: duplicate doc id {doc_id!r}", path=str(path), line=lineno
            )
        seen.add(doc_id)
        metadata = obj.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise InvalidInput(
                f'{_where(path, lineno)}: "metadata" must be an object', path=str(path), line=lineno
            )
        yield LoadedDocument(
            key=doc_id,
            text=_str_field(obj, "text", path, lineno, None),
            title=_str_field(obj, "title", path, lineno, ""),
            metadata=metadata,
            source=_where(path, lineno),
        )


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


@dataclass(slots=True)
class BeirDataset:
    """One split of a BEIR dataset: the judged queries and qrels in memory, the corpus on disk.

    ``queries`` holds only queries with at least one judgement (of any score) in the split.
    """

    name: str
    root: Path
    split: str
    corpus_path: Path
    queries_path: Path
    qrels_path: Path
    queries: dict[str, str] = field(repr=False)
    qrels: dict[str, dict[str, int]] = field(repr=False)

    def iter_corpus(self) -> Iterator[LoadedDocument]:
        """Stream the corpus; see :func:`iter_corpus`."""
        return iter_corpus(self.corpus_path)

    def corpus_fingerprint(self) -> str:
        """sha256 of the corpus file's content: store it with an ingested collection and
        re-ingest when it changes. Queries and qrels do not affect it."""
        return _sha256(self.corpus_path)

    def fingerprint(self) -> str:
        """sha256 over corpus, queries and this split's qrels: identifies an evaluation."""
        return _sha256(self.corpus_path, self.queries_path, self.qrels_path)


def load_beir(root: str | Path, split: str = "test", *, name: str | None = None) -> BeirDataset:
    """Load ``split`` of the BEIR dataset in directory ``root`` (name defaults to the dir name).

    Raises :class:`~engram.errors.InvalidInput` when a file is missing or malformed, or when
    the qrels judge a query that queries.jsonl lacks.
    """
    root = Path(root)
    if not root.is_dir():
        raise InvalidInput(f"BEIR dataset directory not found: {root}", path=str(root))
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise InvalidInput(
            f"BEIR qrels for split {split!r} not found: {qrels_path}",
            hint=f"available splits: {', '.join(splits)}" if splits else None,
            path=str(qrels_path),
        )
    _require_file(corpus_path, "corpus file")
    qrels = load_qrels(qrels_path)
    queries = load_queries(queries_path, ids=qrels.keys())
    missing = [qid for qid in qrels if qid not in queries]
    if missing:
        raise InvalidInput(
            f"{qrels_path}: {len(missing)} judged queries are not in {queries_path}, "
            f"e.g. {', '.join(map(repr, missing[:3]))}",
            path=str(qrels_path),
        )
    return BeirDataset(
        name=name or root.name,
        root=root,
        split=split,
        corpus_path=corpus_path,
        queries_path=queries_path,
        qrels_path=qrels_path,
        queries={qid: queries[qid] for qid in qrels},
        qrels=qrels,
    )
