"""Score a fusion weight that looks at languages, on the legs bench/fusion_legs.py cached.

    python bench/study_fusion_language.py /tmp/fusion-legs/*.json --language manpages-fr=fr

Per query: alpha ``--unread`` when the embedding model does not read the query's language
(``detect_language`` of the query text), ``--cross`` when the query's language is not the
collection's (its words cannot match), else engram's ``auto_alpha``. Prints each set's margin
over its better leg, then both weights chosen leaving each corpus out (0.1 steps; the
largest mean among those keeping every other set at or above its better leg, else the
largest worst margin), scored on the corpus left out.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from study_fusion import Table, cached_table

from engram.search.analyzer import detect_language
from engram.search.fusion import auto_alpha

# The languages each model reads (bge-small-en-v1.5 is English-only).
MODEL_LANGUAGES = {"bge": {"en"}, "multilingual": {"en", "fr"}}


def kinds(table: Table, path: Path, languages: dict[str, str]) -> dict[str, str]:
    """Per query: "unread", "cross" or "auto"."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    reads = MODEL_LANGUAGES[table.name.split("/")[1]]
    out = {}
    for qid in table.signals:
        q = raw["queries"][qid]
        collection = q.get("language") or languages.get(table.corpus, "en")
        lang = detect_language([q["text"]])
        out[qid] = "unread" if lang not in reads else "cross" if lang != collection else "auto"
    return out


def margin(table: Table, kind: dict[str, str], unread: float, cross: float) -> float:
    total = 0.0
    for qid, sig in table.signals.items():
        k = kind[qid]
        a = unread if k == "unread" else cross if k == "cross" else auto_alpha(int(sig["terms"]))
        total += table.grid[round(round(a / 0.025) * 0.025, 3)][qid]
    return total / len(table.signals) - table.better_leg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("caches", type=Path, nargs="+")
    ap.add_argument("--language", action="append", default=[], help="CORPUS=LANG (else en)")
    ap.add_argument("--unread", type=float, default=0.3)
    ap.add_argument("--cross", type=float, default=0.9)
    args = ap.parse_args()
    languages = dict(item.split("=", 1) for item in args.language)
    sets = [(t, kinds(t, p, languages)) for p in args.caches for t in [cached_table(p)]]
    for t, kind in sets:
        share = {k: round(list(kind.values()).count(k) / len(kind), 2) for k in set(kind.values())}
        print(f"{t.name}: {margin(t, kind, args.unread, args.cross):+.4f} {share}")
    grid = [round(0.1 * i, 1) for i in range(11)]
    params = [(u, c) for u in grid for c in grid]
    for group in dict.fromkeys(t.corpus for t, _ in sets):
        train = [(t, k) for t, k in sets if t.corpus != group]
        scored = {pc: [margin(t, k, *pc) for t, k in train] for pc in params}
        safe = [pc for pc in params if min(scored[pc]) >= 0]
        if safe:
            best = max(safe, key=lambda pc: statistics.fmean(scored[pc]))
        else:
            best = max(params, key=lambda pc: min(scored[pc]))
        for t, k in sets:
            if t.corpus == group:
                print(
                    f"  held out {t.name}: unread {best[0]}, cross {best[1]}:"
                    f" {margin(t, k, *best):+.4f}"
                )


if __name__ == "__main__":
    main()
