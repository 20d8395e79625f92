"""Choose, by measurement, when an extractive answer (no LLM) should say "not found in the
documents" rather than quote an unrelated passage.

    python bench/tune_extractive.py                      # ../shared/datasets, bundled model
    python bench/tune_extractive.py --datasets DIR --docs 1000 --data-dir /tmp/tune-extractive

For each BEIR dataset (scifact: English; fr-cnil-faq: French) a subset of the corpus is
ingested once into ``--data-dir`` (the relevant documents of the test queries, then other
documents up to ``--docs``). The test queries are split in two, alternately by id:

* answerable: searched as they are; answering is right, "not found" is wrong;
* unanswerable: searched with their relevant documents removed from the results (as if they
  were not in the collection); quoting anything is a wrong answer.

A third, easier set asks each dataset's queries against the other dataset's collection.
For each relevance signal and threshold it prints, per dataset, the share of answerable
queries answered (recall), the share of answers that were to answerable queries (precision,
one answerable query per unanswerable one) and the share of unanswerable queries answered
(wrong answers); then, per signal, the threshold that maximises the worse of the two
datasets' balanced accuracy ((recall + share of unanswerable queries not answered) / 2), so
that it holds for both languages (near-ties to the lowest). Each line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
from itertools import islice
from pathlib import Path

from engram import open as open_db
from engram.answers.citations import cited_numbers
from engram.answers.extractive import candidates, extractive_answer, sentences
from engram.answers.prompt import select_passages
from engram.eval.beir import iter_corpus, load_qrels, load_queries
from engram.search.analyzer import get_analyzer
from engram.types import SearchResult

DATASETS = {"scifact": "en", "fr-cnil-faq": "fr"}
TIE = 0.005
THRESHOLDS = [round(t * 0.05, 2) for t in range(1, 20)]


def ingest(db, root: Path, name: str, language: str, docs: int) -> None:
    qrels = load_qrels(root / name / "qrels" / "test.tsv")
    wanted = {d for rel in qrels.values() for d in rel}
    chosen, others = [], []
    for doc in iter_corpus(root / name / "corpus.jsonl"):
        (chosen if doc.key in wanted else others).append(doc)
    chosen += others[: max(0, docs - len(chosen))]
    records = [{"id": d.key, "title": d.title, "text": d.text} for d in chosen]
    report = db.add(records, collection=f"tune-{name}", language=language)
    print(json.dumps({"ingested": name, "documents": len(records), "added": report.added}))


def search(db, collection: str, query: str, drop: set[str], k: int) -> list[SearchResult]:
    hits = db.search(query, collection=collection, k=k + 2 * len(drop), highlight=False).results
    return select_passages([h for h in hits if h.document_key not in drop][:k])


def signals(question: str, passages: list[SearchResult], language: str) -> dict[str, float]:
    """Candidate relevance signals: the share of question terms in the best sentence alone
    (``coverage``) or with its passage's title and headings (``coverage+title``, what
    engram.answers uses), and the top passage's vector score (cosine: model-specific)."""
    count, found = candidates(question, passages, language)
    analyzer = get_analyzer(language)
    terms = set(analyzer.query_terms(question))
    bare = max(
        (len(terms.intersection(analyzer.terms(s))) for p in passages[:3] for s in sentences(p)),
        default=0,
    )
    top = passages[0].explain if passages else {}
    with_title = max((s.matched for s in found), default=0) / count if count else 0.0
    return {
        "coverage": bare / count if count else 0.0,
        "coverage+title": with_title,
        "vector": (top.get("vector") or {}).get("score", 0.0),
    }


def rates(rows: list[dict], signal: str, t: float) -> dict[str, float]:
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    hit_a = sum(r[signal] >= t for r in ans)
    hit_u = sum(r[signal] >= t for r in una)
    recall = hit_a / len(ans)
    wrong = hit_u / len(una)
    # Precision for one answerable query per unanswerable one.
    precision = recall / (recall + wrong) if recall + wrong else 1.0
    return {
        "recall": round(recall, 3),
        "precision": round(precision, 3),
        "wrong_answers": round(wrong, 3),
        "balanced": round((recall + 1 - wrong) / 2, 3),
    }


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", type=Path, default=repo.parent / "shared" / "datasets")
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/engram-tune-extractive"))
    ap.add_argument("--docs", type=int, default=1000, help="corpus subset size per dataset")
    ap.add_argument("--k", type=int, default=8, help="passages per question (chat's default)")
    ap.add_argument("--model", default=None, help="embedding model (default: the bundled one)")
    ap.add_argument("--cross", type=int, default=150, help="queries asked of the other corpus")
    args = ap.parse_args()
    overrides = {"embedding_model": args.model} if args.model else {}
    rows: dict[str, list[dict]] = {}
    cross: dict[str, list[dict]] = {}
    with open_db(args.data_dir, **overrides) as db:
        for name, language in DATASETS.items():
            ingest(db, args.datasets, name, language, args.docs)
        for name, language in DATASETS.items():
            qrels = load_qrels(args.datasets / name / "qrels" / "test.tsv")
            queries = load_queries(args.datasets / name / "queries.jsonl", qrels)
            rows[name] = []
            for i, qid in enumerate(sorted(queries)):
                relevant = {d for d, s in qrels[qid].items() if s > 0}
                answerable = i % 2 == 0
                drop = set() if answerable else relevant
                passages = search(db, f"tune-{name}", queries[qid], drop, args.k)
                row = {"answerable": answerable, **signals(queries[qid], passages, language)}
                if answerable:
                    text = extractive_answer(queries[qid], passages, language=language, threshold=0)
                    cited = {
                        passages[n - 1].document_key for n in cited_numbers(text, len(passages))
                    }
                    row["cites_relevant"] = bool(cited & relevant)
                rows[name].append(row)
            other = next(n for n in DATASETS if n != name)
            cross[name] = [
                {
                    "answerable": False,
                    **signals(q, search(db, f"tune-{other}", q, set(), args.k), language),
                }
                for q in islice(queries.values(), args.cross)
            ]
    for name, data in rows.items():
        ans = [r for r in data if r["answerable"]]
        print(
            json.dumps(
                {
                    "dataset": name,
                    "answerable": len(ans),
                    "unanswerable": len(data) - len(ans),
                    "median": {
                        s: [
                            round(statistics.median(r[s] for r in data if r["answerable"] == a), 3)
                            for a in (True, False)
                        ]
                        for s in ("coverage", "coverage+title", "vector")
                    },
                }
            )
        )
    best: dict[str, tuple[float, float]] = {}
    for signal in ("coverage", "coverage+title", "vector"):
        scores = []
        for t in THRESHOLDS + ([0.7, 0.75, 0.8, 0.85, 0.9] if signal == "vector" else []):
            per = {name: rates(data, signal, t) for name, data in rows.items()}
            # The worse dataset's balanced accuracy: a threshold must hold for both languages.
            worst = min(p["balanced"] for p in per.values())
            scores.append((t, worst))
            print(json.dumps({"signal": signal, "threshold": t, **per, "worst_balanced": worst}))
        # Near-ties (within 0.005) go to the lowest threshold: fewer false "not found".
        top = max(w for _, w in scores)
        best[signal] = min((t, w) for t, w in scores if w >= top - TIE)
    for signal, (t, worst) in best.items():
        report: dict = {"best": signal, "threshold": t, "worst_balanced": worst}
        for name, data in rows.items():
            report[name] = rates(data, signal, t)
            cross_rows = [*cross[name], *(r for r in data if r["answerable"])]
            report[name]["wrong_answers_other_corpus"] = rates(cross_rows, signal, t)[
                "wrong_answers"
            ]
            answered = [r for r in data if r["answerable"] and r[signal] >= t]
            report[name]["answers_citing_a_relevant_document"] = round(
                sum(r["cites_relevant"] for r in answered) / max(1, len(answered)), 3
            )
        print(json.dumps(report))


if __name__ == "__main__":
    main()
