"""Conversational recall evaluation: ``engram eval FILE.json``.

The dataset is one JSON file (the repo's development set is
``datasets/conversations/engram-dev-v1.json``)::

    {"name": ..., "conversations": [{"id", "user_id", "language",
        "sessions": [{"id", "timestamp", "turns": [{"id", "role", "speaker", "text"}]}]}],
     "questions": [{"id", "conversation", "question", "evidence": [turn ids], "category",
                    "context": [{"role", "text"}]}]}

Each session is appended as a conversation of the user, its turns dated from the session's
timestamp (one minute apart), with their speaker. Each question is asked through recall over
that user's messages; the ranking of the evidence turns gives Recall@5/10, nDCG@10 and MRR,
overall and per category. Questions without evidence (about something never said) are left
out of the scores. A follow-up question (with ``context``) is asked as it is, or rewritten
(:mod:`engram.memory.rewrite`). Latency is the recall call's wall time, with the query
embedding measured apart.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import InvalidInput
from ..memory.recall import DEFAULT_REPRESENTATION, Recall, Representation
from ..memory.rewrite import rewrite_heuristic
from ..memory.types import MessageWrite
from ..types import SearchMode
from .metrics import latency_percentiles, ndcg_at_k, recall_at_k, reciprocal_rank_at_k

if TYPE_CHECKING:
    from ..engine import Engram

Rewrite = Literal["none", "heuristic"]
TENANT = "eval"
TURN_GAP = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    conversation: str
    question: str
    evidence: tuple[str, ...]
    category: str
    context: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Dataset:
    name: str
    conversations: list[dict[str, Any]]
    questions: list[Question]


def load_dataset(path: str | Path) -> Dataset:
    """Read and check a conversational recall dataset; InvalidInput names what is wrong."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {p}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("conversations"), list):
        raise InvalidInput(
            f"{p} is not a conversation dataset",
            hint="it needs 'conversations' (with sessions of turns) and 'questions'",
        )
    turns: dict[str, str] = {}
    for c in raw["conversations"]:
        for s in c.get("sessions", []):
            datetime.fromisoformat(s["timestamp"])
            for t in s["turns"]:
                turns[t["id"]] = c["id"]
    questions = []
    for q in raw.get("questions", []):
        for e in q.get("evidence", []):
            if turns.get(e) != q["conversation"]:
                raise InvalidInput(
                    f"question {q['id']}: evidence {e!r} is not a turn of its conversation"
                )
        questions.append(
            Question(
                q["id"],
                q["conversation"],
                q["question"],
                tuple(q.get("evidence", [])),
                q.get("category", "all"),
                tuple((t["role"], t["text"]) for t in q.get("context", [])),
            )
        )
    return Dataset(str(raw.get("name", p.stem)), raw["conversations"], questions)


@dataclass(slots=True)
class RecallEval:
    """Scores of one configuration (representation, mode, rewrite) on a dataset."""

    dataset: str
    representation: str
    mode: str
    rewrite: str
    questions: int
    metrics: dict[str, float]
    by_category: dict[str, dict[str, float]]
    latency_ms: dict[str, float]
    embed_ms: dict[str, float]
    index_seconds: float
    misses: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "representation": self.representation,
            "mode": self.mode,
            "rewrite": self.rewrite,
            "questions": self.questions,
            "metrics": self.metrics,
            "by_category": self.by_category,
            "latency_ms": self.latency_ms,
            "embed_ms": self.embed_ms,
            "index_seconds": self.index_seconds,
        }


def load_into(db: Engram, dataset: Dataset, recall: Recall) -> tuple[dict[str, int], float]:
    """Append every session as a conversation of its user (tenant ``eval``) and index it;
    returns turn id → message id and the indexing time."""
    ids: dict[str, int] = {}
    users = []
    for c in dataset.conversations:
        user = f"{c['id']}:{c.get('user_id', c['id'])}"
        users.append(user)
        for s in c["sessions"]:
            start = datetime.fromisoformat(s["timestamp"])
            conv = db.memory.create_conversation(user, title=s["id"], tenant=TENANT)
            writes = [
                MessageWrite(
                    t.get("role", "user"),
                    t["text"],
                    {"turn": t["id"]},
                    t.get("speaker"),
                    start + i * TURN_GAP,
                )
                for i, t in enumerate(s["turns"])
            ]
            written = db.store.append_messages(conv.id, tenant=TENANT, messages=writes)
            ids.update({t["id"]: m.id for t, m in zip(s["turns"], written, strict=True)})
    started = time.perf_counter()
    for user in users:
        recall.catch_up(TENANT, user)
    db.store.sync()
    return ids, time.perf_counter() - started


def run_recall_eval(
    db: Engram,
    path: str | Path,
    *,
    representations: tuple[Representation, ...] = (DEFAULT_REPRESENTATION,),
    modes: tuple[SearchMode, ...] = ("hybrid", "keyword", "vector"),
    rewrites: tuple[Rewrite, ...] = ("heuristic",),
    k: int = 10,
) -> list[RecallEval]:
    """Score recall on the dataset at ``path`` for every combination asked. ``db`` should
    be a scratch database: the dataset's users are written to its tenant ``eval`` (and
    erased again at the end)."""
    dataset = load_dataset(path)
    users = {c["id"]: f"{c['id']}:{c.get('user_id', c['id'])}" for c in dataset.conversations}
    languages = {c["id"]: c.get("language", "en") for c in dataset.conversations}
    scored = [q for q in dataset.questions if q.evidence]
    out = []
    for representation in representations:
        recall = Recall(
            db.store, db.settings, db.embedders, db.searcher, representation=representation
        )
        try:
            ids, index_seconds = load_into(db, dataset, recall)
            for mode in modes:
                for rewrite in rewrites:
                    out.append(
                        _score(db, dataset, recall, scored, ids, users, languages, mode, rewrite, k)
                    )
                    out[-1].representation, out[-1].index_seconds = (
                        representation,
                        round(index_seconds, 1),
                    )
        finally:
            for user in users.values():
                db.memory.erase_user(user, tenant=TENANT)
    return out


def _score(
    db: Engram,
    dataset: Dataset,
    recall: Recall,
    questions: list[Question],
    ids: dict[str, int],
    users: dict[str, str],
    languages: dict[str, str],
    mode: SearchMode,
    rewrite: Rewrite,
    k: int,
) -> RecallEval:
    per_q: dict[str, dict[str, float]] = {}
    categories: dict[str, list[str]] = defaultdict(list)
    latency, embed = [], []
    misses = []
    embedder = db.embedder()
    for q in questions:
        text = q.question
        if rewrite == "heuristic" and q.context:
            text = rewrite_heuristic(text, q.context, languages[q.conversation])
        t0 = time.perf_counter()
        embedder.embed_query(text + " ")  # a different string: not served by the query cache
        embed.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        hits = recall.search(
            text, tenant=TENANT, user_id=users[q.conversation], k=max(k, 10), context=0, mode=mode
        )
        latency.append((time.perf_counter() - t0) * 1000)
        ranking = [str(h.message.id) for h in hits]
        judgements = {str(ids[e]): 1 for e in q.evidence}
        per_q[q.id] = {
            "recall@5": recall_at_k(ranking, judgements, 5),
            "recall@10": recall_at_k(ranking, judgements, 10),
            "ndcg@10": ndcg_at_k(ranking, judgements, 10),
            "mrr@10": reciprocal_rank_at_k(ranking, judgements, 10),
        }
        categories[q.category].append(q.id)
        if per_q[q.id]["recall@10"] < 1:
            misses.append(q.id)

    def mean(qids: list[str]) -> dict[str, float]:
        return {
            m: round(statistics.fmean(per_q[i][m] for i in qids), 4)
            for m in ("recall@5", "recall@10", "ndcg@10", "mrr@10")
        }

    return RecallEval(
        dataset=dataset.name,
        representation="",
        mode=mode,
        rewrite=rewrite,
        questions=len(questions),
        metrics=mean(list(per_q)),
        by_category={c: {**mean(qids), "n": len(qids)} for c, qids in sorted(categories.items())},
        latency_ms={n: round(v, 2) for n, v in latency_percentiles(latency).items()},
        embed_ms={n: round(v, 2) for n, v in latency_percentiles(embed).items()},
        index_seconds=0.0,
        misses=misses,
    )
