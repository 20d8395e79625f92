"""What a base install of engram weighs, and how much of it engram never imports.

    python bench/bench_install.py                 # the checkout this file is in
    python bench/bench_install.py /path/to/checkout --keep

Creates a fresh virtualenv in a temporary directory, installs a copy of the source tree into
it with pip, no extras (the copy keeps pip's ``build/`` and ``*.egg-info`` out of the
checkout), then, with the virtualenv's own interpreter, prints JSON:

- ``site_packages_mb``: everything in site-packages; ``venv_seed_mb`` is what ``python -m venv``
  put there before the install (pip, setuptools) and ``install_mb`` the rest;
- ``top``: the largest distributions, in MB (files listed in each one's RECORD);
- ``declared``: how engram uses each of its base dependencies: ``imported`` (an import
  statement somewhere in the installed ``engram`` package), ``loaded by …`` (another package
  imports it at run time: ``RUNTIME_LOADED``), ``model files`` (a package engram only reads
  files from) or ``unused``;
- ``never_imported``: installed distributions outside the requirement closure of what engram
  imports or has loaded (with the extras it asks for), with their sizes. A package engram
  only reads model files from is listed too; ``model_files`` says how much of it those files
  are, and ``avoidable_mb`` is the total less those files;
- ``probe`` (unless ``--no-probe``): the distributions actually loaded in one process that
  ingests Markdown, HTML, text, XML and DOCX files with the bundled model, runs a hybrid and a
  reranked search, builds the HTTP app and loads the server's HTTP protocol and event loop;
  ``installed_not_loaded`` lists the others (required by a dependency but never loaded there).

``--keep`` keeps the temporary directory and prints its path. Needs the network only for
pip (PyPI); the probe itself runs offline.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Base dependencies that engram does not import itself but that another package loads when
# engram runs (so they are used although no engram module names them).
RUNTIME_LOADED = {
    "uvloop": "uvicorn (engram serve, loop=auto)",
    "httptools": "uvicorn.protocols.http.httptools_impl (engram serve)",
    "PyStemmer": "snowballstemmer (it uses the C stemmers when installed)",
    "python-multipart": "FastAPI (form and file uploads)",
}
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".engram",
    ".*_cache",
    ".hypothesis",
    "results",
)
MB = 1024 * 1024


# -- inside the fresh virtualenv ---------------------------------------------------------------


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _imported_top_names(package_dir: Path) -> set[str]:
    """Top-level module names of every absolute import in the package's source."""
    names: set[str] = set()
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def analyze(top: int) -> dict[str, object]:
    """Sizes and import closure of the running interpreter's site-packages (JSON-ready)."""
    import importlib.metadata as md
    import sysconfig

    try:
        from packaging.requirements import Requirement
    except ImportError:  # not installed: pip vendors it
        from pip._vendor.packaging.requirements import Requirement

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    dists = {_norm(d.metadata["Name"]): d for d in md.distributions()}
    names = {key: d.metadata["Name"] for key, d in dists.items()}

    def size(dist: md.Distribution) -> int:
        total = 0
        for f in dist.files or []:
            p = Path(dist.locate_file(f)).resolve()
            if p.is_file() and p.is_relative_to(site):
                total += p.stat().st_size
        return total

    sizes = {key: size(d) for key, d in dists.items()}
    seed = set(json.loads(os.environ.get("BENCH_SEED", "[]")))

    import engram.providers.models as models

    engram_dir = Path(models.__file__).resolve().parents[1]
    top_level = md.packages_distributions()
    imported = {
        _norm(dist)
        for name in _imported_top_names(engram_dir)
        for dist in top_level.get(name, [])
        if _norm(dist) != "engram"
    }
    model_packages = {m.package for m in models.KNOWN_MODELS.values() if m.package}

    declared: dict[str, str] = {}
    seeds: list[Requirement] = []
    for text in dists["engram"].requires or []:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        key = _norm(req.name)
        if key in imported:
            how = "imported"
        elif req.name in RUNTIME_LOADED or names.get(key) in RUNTIME_LOADED:
            how = "loaded by " + RUNTIME_LOADED.get(req.name, RUNTIME_LOADED.get(names[key], ""))
        elif req.name in model_packages:
            how = "model files"
        else:
            how = "unused"
        declared[names.get(key, req.name)] = how
        if how == "imported" or how.startswith("loaded"):
            seeds.append(req)

    # Requirement closure of what engram imports or has loaded, honouring requested extras.
    closure: set[str] = set()
    todo = [(_norm(r.name), set(r.extras)) for r in seeds]
    todo += [(key, set()) for key in imported]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        key, extras = todo.pop()
        if key not in dists or (key, frozenset(extras)) in seen:
            continue
        seen.add((key, frozenset(extras)))
        closure.add(key)
        for text in dists[key].requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in extras] + [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((_norm(req.name), set(req.extras)))

    never = {
        names[key]: round(sizes[key] / MB, 1)
        for key in sorted(dists, key=lambda k: -sizes[k])
        if key not in closure and key not in seed and key != "engram"
    }
    model_files: dict[str, float] = {}
    for m in models.KNOWN_MODELS.values():
        if m.package and m.package_dir:
            root = models.package_root(m.package)
            if root is not None and (root / m.package_dir).is_dir():
                model_files[f"{m.package}/{m.package_dir}"] = round(
                    _tree_bytes(root / m.package_dir) / MB, 1
                )
    total = _tree_bytes(site)
    seed_bytes = sum(sizes[k] for k in seed if k in sizes)
    return {
        "python": sys.version.split()[0],
        "distributions": len(dists),
        "site_packages_mb": round(total / MB, 1),
        "venv_seed_mb": {names[k]: round(sizes[k] / MB, 1) for k in sorted(seed) if k in sizes},
        "install_mb": round((total - seed_bytes) / MB, 1),
        "top": [
            [names[k], round(sizes[k] / MB, 1)]
            for k in sorted(dists, key=lambda k: -sizes[k])[:top]
        ],
        "declared": declared,
        "never_imported": never,
        "never_imported_mb": round(sum(never.values()), 1),
        "model_files": model_files,
        "avoidable_mb": round(sum(never.values()) - sum(model_files.values()), 1),
        "all_mb": {
            names[k]: round(sizes[k] / MB, 1) for k in sorted(dists, key=lambda k: -sizes[k])
        },
    }


def probe(work: Path) -> dict[str, object]:
    """Run engram for real and list the distributions that ended up loaded."""
    import importlib.metadata as md

    import docx

    import engram

    docs = work / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nEmployees get 25 vacation days a year.\n")
    (docs / "keys.txt").write_text("Rotate an API key with engram keys rotate, then revoke it.\n")
    (docs / "remote.html").write_text(
        "<html><body><h1>Remote work</h1><p>Two days a week from home.</p></body></html>"
    )
    (docs / "policy.xml").write_text(
        "<policy><title>Expenses</title><p>Keep receipts.</p></policy>"
    )
    document = docx.Document()
    document.add_heading("Travel", 1)
    document.add_paragraph("Book trains for trips under four hours.")
    document.save(str(docs / "travel.docx"))

    db = engram.open(work / "data")
    db.ingest(str(docs))
    hits = db.search("how many vacation days do I get?", k=3).results
    reranked = db.search("how many vacation days do I get?", k=3, rerank=True).results

    import uvicorn

    from engram.cli import main as _cli  # noqa: F401
    from engram.config import Settings
    from engram.server.app import create_app
    from engram.server.protocol import TimedHttpToolsProtocol  # noqa: F401

    app = create_app(Settings(data_dir=work / "data"))
    config = uvicorn.Config(app, loop="auto")
    if hasattr(config, "get_loop_factory"):
        config.get_loop_factory()
    else:
        config.setup_event_loop()

    top_level = md.packages_distributions()
    loaded = sorted(
        {
            dist
            for name in {m.split(".")[0] for m in sys.modules}
            for dist in top_level.get(name, [])
        }
    )
    return {
        "hits": [h.document_key for h in hits],
        "reranked": [h.document_key for h in reranked],
        "loaded": loaded,
    }


# -- outside: build the virtualenv, run the above in it ----------------------------------------


def run_inside(python: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    out = subprocess.run(
        [str(python), __file__, *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("source", nargs="?", default=str(REPO), help="checkout to install")
    parser.add_argument("--keep", action="store_true", help="keep the temporary virtualenv")
    parser.add_argument("--no-probe", action="store_true", help="skip the real ingest + search")
    parser.add_argument("--top", type=int, default=15, help="how many largest distributions")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the venv")
    parser.add_argument("--analyze", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe-in", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.analyze:
        print(json.dumps(analyze(args.top)))
        return
    if args.probe_in:
        print(json.dumps(probe(Path(args.probe_in))))
        return

    source = Path(args.source).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="engram-install-"))
    try:
        shutil.copytree(source, tmp / "src", ignore=COPY_IGNORE)
        venv = tmp / "venv"
        subprocess.run([args.python, "-m", "venv", str(venv)], check=True)
        python = venv / "bin" / "python"
        listed = subprocess.run(
            [str(python), "-m", "pip", "list", "--format", "json"],
            check=True,
            capture_output=True,
            text=True,
        )
        seed = [_norm(p["name"]) for p in json.loads(listed.stdout)]
        started = time.perf_counter()
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", str(tmp / "src")],
            check=True,
            capture_output=True,
        )
        result: dict[str, object] = {
            "source": str(source),
            "commit": subprocess.run(
                ["git", "-C", str(source), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
            ).stdout.strip(),
            "date": dt.date.today().isoformat(),
            "install_s": round(time.perf_counter() - started, 1),
        }
        env = {"BENCH_SEED": json.dumps(seed)}
        result.update(run_inside(python, "--analyze", "--top", str(args.top), env=env))
        all_mb = result.pop("all_mb")
        assert isinstance(all_mb, dict)
        if not args.no_probe:
            (tmp / "probe").mkdir()
            found = run_inside(python, "--probe-in", str(tmp / "probe"))
            loaded = {_norm(name) for name in found["loaded"]}  # type: ignore[union-attr]
            not_loaded = {
                name: mb
                for name, mb in all_mb.items()
                if _norm(name) not in loaded and _norm(name) not in seed
            }
            found["installed_not_loaded"] = not_loaded
            found["installed_not_loaded_mb"] = round(sum(not_loaded.values()), 1)
            result["probe"] = found
        if args.keep:
            result["kept"] = str(tmp)
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
