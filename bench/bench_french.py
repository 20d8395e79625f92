"""French ingest throughput (issue 15): today's ingest against this tree's, side by side.

    python bench/bench_french.py                      # 3 rounds, fr-cnil-faq
    python bench/bench_french.py --rounds 5 --baseline-rev 9f00c1d
    python bench/bench_french.py --ablation --docs 150 --model bge-small-en-v1.5

"Today's" is the engram of ``--baseline-rev`` (extracted with ``git archive`` into a
temporary directory) ingesting with bge-small-en-v1.5, the default model when the issue was
filed; "new" is this tree with multilingual-e5-small. Each ingest runs in a fresh process
with a fresh data directory; the configurations alternate within each round, so a busy
machine slows them alike, and each round's ratios compare runs taken minutes apart.

Per run: ``db.add`` of the whole corpus after the model is loaded (wall and CPU seconds of
the process, every thread counted), docs/s and passages/s; plus the time to load the model
(tokenizer and session), which a one-shot ``engram ingest`` pays too. The summary gives the
median of each figure over the rounds and the median of the per-round ratios new/today.

``--ablation``: where the model's time went, in this process, on the chunks of the first
``--docs`` documents (one text per run, longest first), the ways of running the graph taken
in turn each round: (A) today's, one run at a time on every core with onnxruntime's spinning
and the SkipLayerNormalization fusion; (B) A without the fusion; (C) this tree's, one-thread
runs on every core at once, without the fusion; (D) one thread, one run at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "fr-cnil-faq"


def child(dataset: Path, model: str) -> dict[str, float | int | str]:
    """One ingest in this process (run with the engram under test first on sys.path)."""
    import engram
    from engram.ingest.loaders import load_path

    corpus = dataset / "corpus.jsonl"
    docs = load_path(corpus, key=corpus.name)
    with (
        tempfile.TemporaryDirectory(prefix="engram-fr-") as root,
        engram.open(root, embedding_model=model) as db,
    ):
        c0, w0 = time.process_time(), time.perf_counter()
        db.embedder().embed_batch(["warm up"])  # tokenizer + session
        load_wall, load_cpu = time.perf_counter() - w0, time.process_time() - c0
        c0, w0 = time.process_time(), time.perf_counter()
        report = db.add(docs, collection="fr")
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {
        "engram": str(Path(engram.__file__).parents[1]),
        "model": model,
        "docs": len(docs),
        "passages": report.chunks_embedded,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "model_s": round(report.model_seconds, 2),
        "docs_per_s": round(len(docs) / wall, 2),
        "passages_per_s": round(report.chunks_embedded / wall, 2),
        "docs_per_cpu_s": round(len(docs) / cpu, 2),
        "passages_per_cpu_s": round(report.chunks_embedded / cpu, 2),
        "load_wall_s": round(load_wall, 2),
        "load_cpu_s": round(load_cpu, 2),
    }


def ablation(dataset: Path, model: str, docs: int, rounds: int) -> None:
    import onnxruntime as ort

    from engram.ingest.chunking import chunk_document
    from engram.ingest.loaders import load_path
    from engram.ingest.pipeline import embedding_text
    from engram.providers._onnx import pad_batch
    from engram.providers.embedders.onnx import OnnxEmbedder

    corpus = dataset / "corpus.jsonl"
    loaded = load_path(corpus, key=corpus.name)[:docs]
    embedder = OnnxEmbedder(model, model_cache="off")
    texts = [
        embedder.config.passage_prefix + embedding_text(d.title, span.heading_path, span.text)
        for d in loaded
        for span in chunk_document(d, embedder.token_offsets, max_tokens=256, overlap_tokens=32)
    ]
    encodings = sorted(embedder._encode(texts), key=lambda e: -len(e.ids))
    tokens = sum(len(e.ids) for e in encodings)
    path = str(embedder.resolved.model_path)

    def session(threads: int, spin: bool, fused: bool) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spin)))
        disabled = [] if fused else ["SkipLayerNormFusion"]
        return ort.InferenceSession(
            path, options, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )

    names = [i.name for i in session(1, False, False).get_inputs()]
    inputs = [pad_batch([e], names, pad_id=embedder._pad_id) for e in encodings]
    cores = os.cpu_count() or 1

    def one_at_a_time(s: ort.InferenceSession) -> None:
        for x in inputs:
            s.run(None, x)

    def at_once(s: ort.InferenceSession) -> None:
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(lambda x: s.run(None, x), inputs))

    ways = {
        "A: one run on every core, spinning, fused": (one_at_a_time, session(cores, True, True)),
        "B: A without the fusion": (one_at_a_time, session(cores, True, False)),
        "C: one-thread runs at once, not fused": (at_once, session(1, False, False)),
        "D: one thread, one run at a time": (one_at_a_time, session(1, False, False)),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    for _, s in ways.values():
        s.run(None, inputs[0])
    for r in range(rounds):
        for name in list(ways) if r % 2 == 0 else reversed(list(ways)):
            run_, s = ways[name]
            c0, w0 = time.process_time(), time.perf_counter()
            run_(s)
            times[name].append((time.perf_counter() - w0, time.process_time() - c0))
    print(json.dumps({"model": model, "passages": len(inputs), "tokens": tokens}))
    base = times["A: one run on every core, spinning, fused"]
    for name, ts in times.items():
        wall = statistics.median(t[0] for t in ts)
        cpu = statistics.median(t[1] for t in ts)
        vs_wall = statistics.median(b[0] / t[0] for t, b in zip(ts, base, strict=True))
        vs_cpu = statistics.median(b[1] / t[1] for t, b in zip(ts, base, strict=True))
        print(
            f"{name:45s} {len(inputs) / wall:5.1f} passages/s {len(inputs) / cpu:5.1f} "
            f"passages/CPU-s {tokens / cpu:6.0f} tokens/CPU-s; vs A: x{vs_wall:.2f} wall, "
            f"x{vs_cpu:.2f} CPU"
        )


def baseline_tree(rev: str) -> Path:
    """The ``engram`` package of ``rev``, extracted into a temporary directory."""
    target = Path(tempfile.mkdtemp(prefix=f"engram-{rev}-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "engram"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryFile() as f:
        f.write(archive)
        f.seek(0)
        with tarfile.open(fileobj=f) as tar:
            tar.extractall(target, filter="data")
    return target


def run(src: Path, dataset: Path, model: str) -> dict[str, float | int | str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", "--dataset", str(dataset), "--model", model],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{model} with {src} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=DATA)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-rev", default="9f00c1d", help="today's engram (git revision)")
    ap.add_argument("--baseline-model", default="bge-small-en-v1.5")
    ap.add_argument("--model", default="multilingual-e5-small")
    ap.add_argument(
        "--also", action="store_true", help="also this tree with bge and today's with e5"
    )
    ap.add_argument("--ablation", action="store_true", help="the model's time, taken apart")
    ap.add_argument("--docs", type=int, default=150, help="documents of --ablation")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ablation:
        ablation(args.dataset, args.model, args.docs, args.rounds)
        return
    if args.child:
        print(json.dumps(child(args.dataset, args.model)))
        return

    base = baseline_tree(args.baseline_rev)
    configs = {
        "today": (base, args.baseline_model),
        "new": (ROOT, args.model),
    }
    if args.also:
        configs["new-bge"] = (ROOT, args.baseline_model)
        configs["today-e5"] = (base, args.model)
    runs: dict[str, list[dict[str, float | int | str]]] = {name: [] for name in configs}
    for r in range(args.rounds):
        order = list(configs) if r % 2 == 0 else list(reversed(configs))
        for name in order:
            src, model = configs[name]
            result = run(src, args.dataset, model)
            result["load_avg"] = round(os.getloadavg()[0], 2)
            runs[name].append(result)
            print(json.dumps({"round": r, "config": name, **result}), flush=True)

    keys = ["wall_s", "cpu_s", "docs_per_s", "passages_per_s", "docs_per_cpu_s"]
    keys += ["passages_per_cpu_s", "load_wall_s", "load_cpu_s", "passages"]
    summary: dict[str, object] = {
        name: {k: statistics.median(float(x[k]) for x in rs) for k in keys}
        for name, rs in runs.items()
    }
    for name in configs:
        if name == "today":
            continue
        summary[f"{name}/today"] = {
            k: round(
                statistics.median(
                    float(n[k]) / float(t[k])
                    for n, t in zip(runs[name], runs["today"], strict=True)
                ),
                2,
            )
            for k in ("docs_per_s", "passages_per_s", "docs_per_cpu_s", "passages_per_cpu_s")
        }
    print(json.dumps({"summary": summary}, indent=1))


if __name__ == "__main__":
    main()
