"""What a new user waits for on the command line, and what the install weighs.

    python bench/bench_cli.py --files 200

Measured, each as the median of ``--repeat`` runs of the real console script in a fresh
process: ``engram --help``; a one-shot ``engram search`` (keyword and hybrid) on a collection
of ``--files`` files; the first ingest of that folder and its re-ingest when nothing changed
(files/s). Also the size of the virtualenv's site-packages and of its largest packages.
Targets (issue 16, quiet machine): --help ≤ 0.15 s, one-shot hybrid search ≤ 0.4 s,
unchanged re-ingest ≥ 500 files/s.

The console script is the one beside this interpreter; it imports the ``engram`` found first
on its path, so ``PYTHONPATH=<checkout>`` measures that checkout (the output names the
package it ran). Python writes its bytecode caches as an installed package has them
(``PYTHONDONTWRITEBYTECODE`` is dropped: with it, every run would compile engram again), and
each measured command runs once unmeasured first, so that the model's cached optimized graph
(``model_cache_dir``) exists as after a user's first search.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ENGRAM = str(Path(sys.executable).parent / "engram")


def timed(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([ENGRAM, *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def median_of(args: list[str], env: dict[str, str], repeat: int) -> float:
    return round(statistics.median(timed(args, env) for _ in range(repeat)), 3)


def make_folder(root: Path, n: int) -> None:
    """``n`` files of mixed formats (Markdown, text, HTML, JSON) with varied words."""
    rng = random.Random(3)
    words = [
        "rent",
        "lease",
        "tenant",
        "deposit",
        "notice",
        "repair",
        "heating",
        "landlord",
        "contract",
        "clause",
    ]
    for i in range(n):
        body = " ".join(rng.choice(words) for _ in range(rng.randint(80, 400)))
        kind = i % 4
        if kind == 0:
            (root / f"note{i}.md").write_text(f"# Note {i}\n\n{body}\n")
        elif kind == 1:
            (root / f"note{i}.txt").write_text(body)
        elif kind == 2:
            (root / f"page{i}.html").write_text(
                f"<html><body><h1>Page {i}</h1><p>{body}</p></body></html>"
            )
        else:
            (root / f"rec{i}.json").write_text(json.dumps({"id": f"r{i}", "text": body}))


def site_packages_mb() -> tuple[float, list[tuple[str, float]]]:
    root = Path(sysconfig.get_paths()["purelib"])
    sizes = []
    for entry in root.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__")):
            total = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
            sizes.append((entry.name, round(total / 2**20, 1)))
    sizes.sort(key=lambda s: -s[1])
    return round(sum(s for _, s in sizes), 1), sizes[:8]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--model", default="bge-small-en-v1.5", help="'hash' skips the real model")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="engram-cli-"))
    folder = work / "docs"
    folder.mkdir()
    make_folder(folder, args.files)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "ENGRAM_DATA_DIR": str(work / "data"),
        "ENGRAM_EMBEDDING_MODEL": args.model,
    }
    package = subprocess.run(
        [sys.executable, "-P", "-c", "import engram; print(engram.__path__[0])"],  # -P: no cwd
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    out: dict[str, object] = {"files": args.files, "model": args.model, "engram": package}
    timed(["--help"], env)  # unmeasured: bytecode caches
    out["help_s"] = median_of(["--help"], env, args.repeat)
    first = timed(["ingest", str(folder), "-c", "kb"], env)
    out["first_ingest_files_per_s"] = round(args.files / first, 1)
    again = statistics.median(timed(["ingest", str(folder), "-c", "kb"], env) for _ in range(3))
    out["unchanged_reingest_s"] = round(again, 3)
    out["unchanged_reingest_files_per_s"] = round(args.files / again, 1)
    for mode in ("keyword", "hybrid"):
        search = ["search", "landlord deposit notice", "-c", "kb", "--mode", mode]
        timed(search, env)  # unmeasured: bytecode caches, the model's optimized graph
        out[f"search_{mode}_s"] = median_of(search, env, args.repeat)
    out["site_packages_mb"], out["largest_packages_mb"] = site_packages_mb()
    print(json.dumps(out, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
