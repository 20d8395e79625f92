"""Study per-query fusion weights against one global alpha, on cached legs.

    python bench/fusion_legs.py DATASET --data-dir DIR -o /tmp/fusion-legs   # once per dataset
    python bench/study_fusion.py /tmp/fusion-legs/*.json

Each variant ranks every query's candidates (``engram.search.fusion.fuse`` with the weight the
variant picks), documents by their best chunk, scored by nDCG@10. Prints, per dataset, the
better leg and each variant, then a leave-one-corpus-out estimate for the variants with a
free parameter: the parameter is chosen on the other corpora (largest worst margin over
the better leg, then largest mean), and scored on the one left out. Query sets over one
corpus (another model's vectors, queries in another language: a cache's "corpus") leave
together.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engram.eval.metrics import ndcg_at_k
from engram.search.fusion import auto_alpha, fuse

Query = dict[str, Any]
Chooser = Callable[[Query], float]  # a query's legs → the vector weight alpha


class Dataset:
    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_text(encoding="utf-8"))
        self.name = f"{raw['name']}/{raw['model'].split('-')[0]}"
        # Query sets over one corpus (other models, other query languages) leave together.
        self.corpus = raw.get("corpus", raw["name"])
        self.unit = {int(c): u for c, u in raw["unit"].items()}
        self.qrels = raw["qrels"]
        self.queries: dict[str, Query] = {}
        for qid, q in raw["queries"].items():
            if qid not in self.qrels:
                continue
            q["kw"] = [(int(i), float(s)) for i, s in q["kw"]]
            q["vec"] = [(int(i), float(s)) for i, s in q["vec"]]
            self.queries[qid] = q

    def ndcg(self, qid: str, ranked: list[int]) -> float:
        docs: dict[str, None] = {}
        for cid in ranked:
            docs.setdefault(self.unit[cid], None)
            if len(docs) == 10:
                break
        return ndcg_at_k(list(docs), self.qrels[qid], 10)

    def per_query(self, choose: Chooser | str, method: str = "dbsf") -> dict[str, float]:
        out = {}
        for qid, q in self.queries.items():
            if choose == "keyword":
                ranked = [i for i, _ in q["kw"]]
            elif choose == "vector":
                ranked = [i for i, _ in q["vec"]]
            else:
                assert callable(choose)
                fused = fuse(q["kw"], q["vec"], method=method, alpha=choose(q))
                ranked = [f.id for f in fused]
            out[qid] = self.ndcg(qid, ranked)
        return out

    def score(self, choose: Chooser | str, method: str = "dbsf") -> float:
        return statistics.fmean(self.per_query(choose, method).values())


# -- unlabeled signals of one query's legs ------------------------------------------------------
def top_z(leg: list[tuple[int, float]]) -> float:
    """How far the leg's best score stands above its candidates, in standard deviations."""
    if len(leg) < 2:
        return 0.0
    scores = [s for _, s in leg]
    mean = statistics.fmean(scores)
    std = statistics.pstdev(scores)
    return (scores[0] - mean) / std if std > 1e-12 else 0.0


def overlap(q: Query, k: int = 10) -> float:
    """Share of the top-k chunks both legs rank (0: disjoint, 1: the same set)."""
    a = {i for i, _ in q["kw"][:k]}
    b = {i for i, _ in q["vec"][:k]}
    return len(a & b) / k


def idf(df: int, n: int) -> float:
    return max(math.log((n - df + 0.5) / (df + 0.5)), 1e-6) if df else math.log(n)


def signals(q: Query) -> dict[str, float]:
    n = max([q["n"], 2 * max(q["df"], default=1)])  # a stale count must not go below df
    idfs = [idf(d, n) for d in q["df"]]
    top = q["kw"][0][1] if q["kw"] else 0.0
    return {
        # The keyword leg's best score over the query's summed IDF: about 1 when one chunk
        # holds every query word once, low when it matches only a few of them.
        "kw_cover": top / sum(idfs) if idfs else 0.0,
        "terms": float(len(q["terms"])),
        "uterms": float(len(set(q["terms"]))),
        "oov": sum(1 for d in q["df"] if d == 0) / max(len(q["df"]), 1),
        "idf_mean": statistics.fmean(idfs) / math.log(n) if idfs else 0.0,
        "overlap10": overlap(q, 10),
        "kw_z": top_z(q["kw"]),
        "vec_z": top_z(q["vec"]),
        "kw_count": float(len(q["kw"])),
    }


def load(paths: list[Path]) -> list[Dataset]:
    return [Dataset(p) for p in paths]


# -- rules: a query's legs → alpha ---------------------------------------------------------------
ALPHAS = [round(i * 0.025, 3) for i in range(41)]  # the grid every rule's alpha is rounded to


class Table:
    """nDCG@10 of every query at every alpha of the grid (and of each leg alone), computed
    once, so that a rule scores as fast as it can be looked up."""

    def __init__(self, ds: Dataset, method: str = "dbsf") -> None:
        self.name = ds.name
        self.corpus = ds.corpus
        self.keyword = ds.per_query("keyword")
        self.vector = ds.per_query("vector")
        self.grid = {a: ds.per_query(lambda q, a=a: a, method) for a in ALPHAS}
        self.signals = {qid: signals(q) for qid, q in ds.queries.items()}

    @property
    def better_leg(self) -> float:
        return max(statistics.fmean(self.keyword.values()), statistics.fmean(self.vector.values()))

    def score(self, rule: Callable[[dict[str, float]], float]) -> float:
        total = 0.0
        for qid, sig in self.signals.items():
            a = min(max(rule(sig), 0.0), 1.0)
            total += self.grid[round(round(a / 0.025) * 0.025, 3)][qid]
        return total / len(self.signals)


def cached_table(path: Path) -> Table:
    """The Table of the legs cached at ``path``, itself cached beside it (``.table.pickle``)."""
    target = path.with_suffix(".table.pickle")
    if target.exists() and target.stat().st_mtime > path.stat().st_mtime:
        table = Table.__new__(Table)
        with target.open("rb") as f:
            table.__dict__.update(pickle.load(f))  # plain data: readable from any script
        return table
    table = Table(Dataset(path))
    with target.open("wb") as f:
        pickle.dump(table.__dict__, f)
    return table


def rule_families() -> dict[str, dict[str, Callable[[dict[str, float]], float]]]:
    """Each family: {parameter label: rule}. A rule sees only the query's unlabeled signals."""
    fam: dict[str, dict[str, Callable[[dict[str, float]], float]]] = {}
    fam["constant"] = {f"{a}": (lambda s, a=a: a) for a in ALPHAS if 0.3 <= a <= 1.0}
    fam["terms"] = {  # fewer query terms → more weight on the vector leg
        f"{hi}@3 -{slope}/ln": (
            lambda s, hi=hi, sl=slope: hi - sl * math.log(max(s["terms"], 1) / 3)
        )
        for hi in (0.8, 0.85, 0.9, 0.95, 1.0)
        for slope in (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
    }
    fam["terms, bounded"] = {  # hi up to `pivot` words, less `slope` per e-fold, floor lo
        f"{hi} to {p} words -{slope}/ln, floor {lo}": (
            lambda s, hi=hi, p=p, sl=slope, lo=lo: max(
                lo, min(hi, hi - sl * math.log(max(s["terms"], 1) / p))
            )
        )
        for hi in (0.85, 0.9, 0.95)
        for p in (3, 4, 5)
        for slope in (0.2, 0.3, 0.4, 0.5, 0.6)
        for lo in (0.5, 0.55, 0.6)
    }
    fam["overlap"] = {  # legs agreeing on the top 10 → weight (a0 at no overlap, a1 at full)
        f"{a0}->{a1}": (lambda s, a0=a0, a1=a1: a0 + (a1 - a0) * s["overlap10"])
        for a0 in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
        for a1 in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    }
    fam["terms, then keyword cover"] = {  # the default's rule, more vector weight when the
        # keyword leg's best match covers little of the query (the query's words are not the
        # collection's: another language, another vocabulary)
        f"auto + {k}*({c0}-cover)": (
            lambda s, k=k, c0=c0: auto_alpha(int(s["terms"])) + k * max(c0 - s["kw_cover"], 0.0)
        )
        for k in (0.0, 0.1, 0.2, 0.3, 0.5)
        for c0 in (0.6, 0.8, 1.0)
    }
    fam["keyword cover"] = {  # full cover → a1, no cover → a1 + k
        f"{a1}+{k}*(1-cover)": (lambda s, a1=a1, k=k: a1 + k * max(1.0 - s["kw_cover"], 0.0))
        for a1 in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
        for k in (0.0, 0.2, 0.4, 0.6, 0.8)
    }
    fam["confidence"] = {  # the leg whose best candidate stands out more gets more weight
        f"{c}+{k}*(vz-kz)": (lambda s, c=c, k=k: c + k * (s["vec_z"] - s["kw_z"]))
        for c in (0.5, 0.6, 0.7, 0.8, 0.85, 0.9)
        for k in (0.0, 0.05, 0.1, 0.2)
    }
    return fam


def margins(tables: list[Table], rule: Callable[[dict[str, float]], float]) -> list[float]:
    return [t.score(rule) - t.better_leg for t in tables]


def pick(tables: list[Table], rules: dict[str, Callable[[dict[str, float]], float]]) -> str:
    """The rule with the largest mean nDCG@10 among those at or above the better leg on every
    dataset given; when none is, the one with the largest worst margin."""
    scored = {name: margins(tables, r) for name, r in rules.items()}
    safe = [n for n, m in scored.items() if min(m) >= 0]
    if safe:
        return max(safe, key=lambda n: statistics.fmean(scored[n]))
    return max(scored, key=lambda n: min(scored[n]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("caches", type=Path, nargs="+")
    args = ap.parse_args()
    tables = [cached_table(p) for p in args.caches]
    names = [t.name for t in tables]
    print("datasets:", names)
    print("better leg:", [round(t.better_leg, 4) for t in tables])
    print("engram's auto_alpha (no grid):")
    for path in args.caches:
        ds = Dataset(path)
        auto = ds.score(lambda q: auto_alpha(len(q["terms"])))
        today = ds.score(lambda q: 0.85)
        print(f"  {ds.name}: auto {auto:.4f}, alpha 0.85 {today:.4f}")
    for t in tables:
        best = max(ALPHAS, key=lambda a: statistics.fmean(t.grid[a].values()))
        safe = [a for a in ALPHAS if statistics.fmean(t.grid[a].values()) >= t.better_leg]
        runs: list[list[float]] = []  # runs of consecutive grid alphas
        for a in safe:
            if runs and ALPHAS.index(a) == ALPHAS.index(runs[-1][-1]) + 1:
                runs[-1].append(a)
            else:
                runs.append([a])
        span = ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs) or "none"
        print(
            f"  {t.name}: best fixed alpha {best} {statistics.fmean(t.grid[best].values()):.4f},"
            f" alphas at or above the better leg: {span}"
        )
    for family, rules in rule_families().items():
        best = pick(tables, rules)
        print(family, "fit on all:", best, [round(t.score(rules[best]), 4) for t in tables])
        held = []
        for group in dict.fromkeys(t.corpus for t in tables):
            # Query sets over one corpus (the same queries over another model's vectors,
            # or other queries over the same documents) are not held out from each other.
            train = [t for t in tables if t.corpus != group]
            label = pick(train, rules)
            for t in tables:
                if t.corpus == group:
                    held.append((t.name, label, round(t.score(rules[label]) - t.better_leg, 4)))
        print("  leave-one-out:", held)


if __name__ == "__main__":
    main()
