"""A smaller BEIR set from a large one: the first judged queries, every document judged for
them, and random other documents up to a size (the "SciFact subset" of docs/benchmarks.md).

    python bench/beir_subset.py ../shared/datasets/scifact /tmp/scifact-sub --queries 100 --docs 1000

Queries are taken in qrels order (the first ``--queries`` distinct query ids of
``qrels/test.tsv``); the other documents are drawn with ``random.Random(--seed)`` from the
corpus in file order, so the same arguments give the same files. Scores on a subset are
higher than on the whole corpus (fewer distractors): compare runs on one subset only.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path


def subset(src: Path, out: Path, queries: int, docs: int, seed: int) -> dict[str, int]:
    lines = (src / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:] if line.strip()]
    qids = list(dict.fromkeys(r[0] for r in rows))[:queries]
    wanted = set(qids)
    judged = {r[1] for r in rows if r[0] in wanted}
    corpus = [json.loads(line) for line in (src / "corpus.jsonl").open(encoding="utf-8")]
    others = [d for d in corpus if d["_id"] not in judged]
    random.Random(seed).shuffle(others)
    keep = [d for d in corpus if d["_id"] in judged] + others[: max(docs - len(judged), 0)]
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for d in keep:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as f:
        for line in (src / "queries.jsonl").open(encoding="utf-8"):
            if json.loads(line)["_id"] in wanted:
                f.write(line if line.endswith("\n") else line + "\n")
    with (out / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
        f.write(header + "\n")
        for r in rows:
            if r[0] in wanted:
                f.write("\t".join(r) + "\n")
    return {"docs": len(keep), "judged_docs": len(judged), "queries": len(qids)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help="a BEIR directory")
    ap.add_argument("out", type=Path)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(subset(args.source, args.out, args.queries, args.docs, args.seed)))


if __name__ == "__main__":
    main()
