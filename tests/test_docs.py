"""Docs generated from code stay current; the public API is curated; the README runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engram
from engram.cli.docs import cli_markdown, configuration_markdown
from engram.config import Settings

REPO = Path(__file__).resolve().parent.parent


def test_configuration_reference_is_current() -> None:
    assert (REPO / "docs" / "configuration.md").read_text() == configuration_markdown(), (
        "run: python -m engram.cli.docs"
    )


def test_cli_reference_is_current() -> None:
    assert (REPO / "docs" / "cli.md").read_text() == cli_markdown(), (
        "run: python -m engram.cli.docs"
    )


def test_every_setting_is_documented() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description and len(field.description) > 10, name


def test_exported_members() -> None:
    exported = set(engram.__all__)
    public = {name for name in dir(engram) if not name.startswith("_")}
    # Subpackages become attributes on import; everything else public must be in __all__.
    modules = {name for name in public if type(getattr(engram, name)).__name__ == "module"}
    assert public - modules == exported
    for name in exported:
        assert getattr(engram, name).__doc__, f"{name} has no docstring"


def _readme_blocks(lang: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    blocks, inside, current = [], False, []
    for line in text.splitlines():
        if line.startswith("```"):
            if inside:
                blocks.append("\n".join(current))
                inside, current = False, []
            elif line.strip() == f"```{lang}":
                inside = True
            continue
        if inside:
            current.append(line)
    return blocks


def test_readme_first_screen_has_two_commands() -> None:
    first = _readme_blocks("bash")[:2]
    assert "engram ingest samples/" in first[0] and "engram search" in first[0]
    assert "pytest" in first[1]
    assert "pytest" in (REPO / ".ci" / "run").read_text()


@pytest.mark.slow
def test_readme_library_example_runs_with_the_bundled_model(tmp_path: Path) -> None:
    """The README's five-line example, executed as written, with the real local model."""
    shutil.copytree(REPO / "samples", tmp_path / "samples")
    code = _readme_blocks("python")[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("vacation.html 1 ")  # the vacation policy answers the question
    assert "<mark>" in proc.stdout
    with engram.open(tmp_path / ".engram") as db:
        assert db.collection().model_id == "bge-small-en-v1.5"
        assert db.collection().dimension == 384


def test_architecture_page_names_only_what_exists() -> None:
    """docs/architecture.md names modules as ``engram/…`` paths, optionally followed by
    ``:function`` or ``:Class.method``: each path exists, and each name is defined in it."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = re.findall(r"`((?:engram|tests)/[\w/.]+?)(?::([\w.]+))?`", text)
    assert len(named) > 30  # the page names the code it describes
    for path, symbol in named:
        target = REPO / path
        assert target.exists(), f"docs/architecture.md names {path}, which does not exist"
        if symbol:
            source = target.read_text(encoding="utf-8")
            for part in symbol.split("."):
                assert re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{part}\b", source, re.M), (
                    f"docs/architecture.md names {path}:{symbol}, which is not defined there"
                )
