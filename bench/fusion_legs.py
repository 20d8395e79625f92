"""Cache both legs of every query of a dataset, so fusion variants score offline in seconds.

    python bench/fusion_legs.py ../shared/datasets/scifact --data-dir /tmp/eval -o /tmp/legs
    python bench/fusion_legs.py datasets/conversations/engram-dev-v1.json --data-dir /tmp/conv -o /tmp/legs

A BEIR dataset must already be ingested in ``--data-dir`` (``engram eval`` does it; open a
copy if another process owns the directory: opening writes SQLite's WAL index). A
conversation dataset (``engram eval FILE.json``) is loaded into ``--data-dir`` the way the
recall evaluation does it (default representation, heuristic rewrite of follow-ups), then
erased. Writes ``<out>/<dataset>-<model>.json``: per query its analyzed terms with their
document frequencies, and each leg's candidates (chunk id, score) at ``--depth``, the
chunk → judged-unit map and the judgements. ``bench/study_fusion.py`` reads these files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engram import open as open_db
from engram.engine import Engram
from engram.eval.beir import load_beir
from engram.eval.runner import collection_name
from engram.search.analyzer import analyzer_for
from engram.types import Collection


def legs_of(
    db: Engram, coll: Collection, text: str, depth: int, where: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The keyword and vector candidates of one query, as the searcher computes them."""
    terms = analyzer_for(coll).terms(text)
    kw = db.searcher.keyword_leg(coll, terms, depth, where)[0] if terms else []
    vec = db.store.vector_search(coll, db.searcher.embed_query(coll, text), k=depth, where=where)
    freqs = db.store.term_frequencies(coll, terms) if terms else {}
    return {
        "text": text,
        "terms": terms,
        "df": [freqs.get(t, 0) for t in terms],
        "n": coll.chunk_count,
        "language": coll.language,  # the collection's
        "kw": [[i, round(s, 6)] for i, s in kw],
        "vec": [[i, round(s, 6)] for i, s in vec],
    }


def beir_legs(db: Engram, root: Path, depth: int) -> dict[str, Any]:
    ds = load_beir(root)
    coll = db.store.get_collection(collection_name(ds, db.embedder().model_id))
    queries = {qid: legs_of(db, coll, text, depth) for qid, text in ds.queries.items()}
    ids = sorted({i for q in queries.values() for i, _ in q["kw"] + q["vec"]})
    unit = {cid: rec.document_key for cid, rec in db.store.get_chunks(coll, ids).items()}
    return {"name": ds.name, "queries": queries, "unit": unit, "qrels": ds.qrels}


def conversation_legs(db: Engram, path: Path, depth: int) -> dict[str, Any]:
    from engram.eval.conversations import TENANT, load_dataset, load_into
    from engram.memory.recall import Recall
    from engram.memory.rewrite import rewrite_heuristic

    ds = load_dataset(path)
    users = {c["id"]: f"{c['id']}:{c.get('user_id', c['id'])}" for c in ds.conversations}
    languages = {c["id"]: c.get("language", "en") for c in ds.conversations}
    recall = Recall(db.store, db.settings, db.embedders, db.searcher)
    ids, _ = load_into(db, ds, recall)
    queries, qrels, unit = {}, {}, {}
    try:
        for q in ds.questions:
            if not q.evidence:
                continue
            text = q.question
            if q.context:
                text = rewrite_heuristic(text, q.context, languages[q.conversation])
            found = recall.catch_up(TENANT, users[q.conversation])
            assert found is not None
            coll = db.store.get_collection(found.name, tenant=TENANT)  # with its chunk count
            legs = legs_of(db, coll, text, depth)
            chunk_ids = [i for i, _ in legs["kw"] + legs["vec"]]
            for cid, rec in db.store.get_chunks(coll, chunk_ids).items():
                unit[cid] = rec.document_key  # the message id
            # Chunk ids are unique across collections (one table), so queries can share maps.
            queries[q.id] = legs
            qrels[q.id] = {str(ids[e]): 1 for e in q.evidence}
    finally:
        for user in users.values():
            db.memory.erase_user(user, tenant=TENANT)
    return {"name": ds.name, "queries": queries, "unit": unit, "qrels": qrels}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path, help="a BEIR directory or a conversation .json")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--model", default=None, help="embedding model (default: the settings')")
    ap.add_argument("--name", default=None, help="the set's name (default: the dataset's)")
    ap.add_argument("--depth", type=int, default=150, help="candidates per leg")
    ap.add_argument("-o", "--out", type=Path, default=Path("/tmp/fusion-legs"))
    args = ap.parse_args()
    overrides = {"embedding_model": args.model} if args.model else {}
    with open_db(args.data_dir, **overrides) as db:
        if args.dataset.suffix == ".json":
            cache = conversation_legs(db, args.dataset, args.depth)
        else:
            cache = beir_legs(db, args.dataset, args.depth)
        model = db.embedder().model_id
    # Query sets over one corpus (e.g. its queries in another language) share its name here.
    cache["corpus"] = cache["name"]
    if args.name:
        cache["name"] = args.name
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{cache['name']}-{model}.json"
    cache["model"] = model
    target.write_text(json.dumps(cache), encoding="utf-8")
    print(f"{target}: {len(cache['queries'])} queries")


if __name__ == "__main__":
    main()
