"""The CLI: exit codes and messages, in-process (CliRunner) and as a real console script."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import engram
from engram.cli import cli
from engram.config import Settings


@pytest.fixture
def run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ENGRAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    monkeypatch.setenv("ENGRAM_CHUNK_TOKENS", "64")
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def test_ingest_search_collections_docs_delete(run, corpus: Path) -> None:
    res = run("ingest", str(corpus))
    assert res.exit_code == 0, res.output
    assert "5 added, 0 updated, 0 unchanged, 0 deleted, 0 failed" in res.output
    res = run("ingest", str(corpus), "--json")
    assert json.loads(res.output)["unchanged"] == 5

    res = run("search", "parrots speech", "--json", "-k", "3")
    data = json.loads(res.output)
    assert data["data"][0]["document"] == "sub/birds.html"
    assert data["data"][0]["explain"]["keyword"]["rank"] == 1
    assert set(data["data"][0]) >= {"span", "version", "highlight", "heading_path", "page", "score"}

    res = run("search", "parrots speech", "--json", "--fusion", "rrf", "--alpha", "0.25")
    assert json.loads(res.output)["data"][0]["explain"]["fused"]["method"] == "rrf"
    res = run("search", "parrots speech", "--alpha", "2")
    assert res.exit_code == 2 and "not a number between 0 and 1, nor 'auto'" in res.output
    res = run("search", "parrots speech", "--json", "--alpha", "auto")
    assert json.loads(res.output)["data"][0]["explain"]["fused"]["alpha_from"] == (
        "auto: 2 query words"
    )

    res = run("search", "qubits", "--where", "field=physics", "--mode", "keyword")
    assert res.exit_code == 0 and "Quantum computing" in res.output
    res = run("search", "qubits", "--where", "year<2020", "--mode", "keyword")
    assert "No results." in res.output

    res = run("collections")
    assert "default: 5 documents" in res.output and "hash-64" in res.output
    res = run("docs", "--json")
    assert sorted(d["key"] for d in json.loads(res.output)) == [
        "cats.md",
        "dogs.txt",
        "r1",
        "r2",
        "sub/birds.html",
    ]

    res = run("delete", "r1", "ghost")
    assert res.exit_code == 0 and "Deleted 1 document(s); 1 not found." in res.output
    res = run("delete", "ghost")
    assert res.exit_code == 1
    res = run("delete", "--all")
    assert "Deleted collection 'default'" in res.output


def test_stdin_ingest(run) -> None:
    note = "# Note\n\nThe boiler is serviced in October.\n"
    res = run("ingest", "-", "--format", "md", input=note)
    assert res.exit_code == 0 and "1 added" in res.output
    res = run("search", "boiler", "--mode", "keyword", "--json")
    key = json.loads(res.output)["data"][0]["document"]
    assert key.startswith("stdin-") and len(key) == len("stdin-") + 12
    # The same text again is unchanged; another pipe is another document, not a replacement.
    assert "1 unchanged" in run("ingest", "-", "--format", "md", input=note).output
    assert "1 added" in run("ingest", "-", input="The gutters are cleared in November.\n").output
    assert "1 added" in run("ingest", "-", "--key", "notes/house", input="Roof: 2031.\n").output
    res = run("docs", "--json")
    keys = {d["key"] for d in json.loads(res.output)}
    assert len(keys) == 3 and "notes/house" in keys and key in keys
    res = run("ingest", "some-file.md", "--key", "x")
    assert res.exit_code == 2 and "--key names the document read from stdin" in res.output


@pytest.mark.parametrize(
    ("args", "message", "hint", "seeded"),
    [
        (["search", "cats"], "Error: no engram database in", "Hint: ingest documents first", False),
        (
            ["search", "cats", "-c", "kb"],
            "Error: no collection named 'kb'",
            "Hint: existing collections: default",
            True,
        ),
        (["search", "", "-c", "x"], "Error: the query is empty", "Hint:", True),
        (
            ["search", "cats", "--where", "nonsense"],
            "Error: cannot parse filter",
            "Hint: write key=value",
            True,
        ),
    ],
)
def test_errors_are_one_line_with_a_hint(run, args, message, hint, seeded) -> None:
    if seeded:
        assert run("ingest", "-", "--key", "note", input="A note about cats.\n").exit_code == 0
    res = run(*args)
    assert res.exit_code == 1
    assert message in res.output and hint in res.output
    assert "Traceback" not in res.output


def test_ingest_of_only_failures_exits_nonzero(run, tmp_path: Path) -> None:
    res = run("ingest", str(tmp_path / "missing.md"))
    assert res.exit_code == 1
    assert "no such file or directory" in res.output


def test_bad_setting_from_environment(run, monkeypatch) -> None:
    monkeypatch.setenv("ENGRAM_CHUNK_TOKENS", "nope")
    res = run("collections")
    assert res.exit_code == 1
    assert "ENGRAM_CHUNK_TOKENS" in res.output


def test_console_script_over_a_real_process(tmp_path: Path, corpus: Path) -> None:
    env = {**os.environ, "ENGRAM_EMBEDDING_MODEL": "hash", "ENGRAM_DATA_DIR": str(tmp_path / "d")}
    exe = Path(sys.executable).parent / "engram"
    ok = subprocess.run([str(exe), "ingest", str(corpus)], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    found = subprocess.run(
        [str(exe), "search", "loyal", "--json"], env=env, capture_output=True, text=True
    )
    assert json.loads(found.stdout)["data"][0]["document"] == "dogs.txt"
    bad = subprocess.run(
        [str(exe), "search", "x", "-c", "nope"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1 and bad.stderr.startswith("Error: no collection named 'nope'")


def test_global_options_are_taken_after_the_subcommand_too(tmp_path: Path, corpus: Path) -> None:
    """``engram search x --data-dir D`` used to fail with "No such option"."""
    data = str(tmp_path / "anywhere")
    runner = CliRunner()
    res = runner.invoke(cli, ["ingest", str(corpus), "--data-dir", data, "--model=hash"])
    assert res.exit_code == 0 and "5 added" in res.output, res.output
    res = runner.invoke(
        cli, ["search", "parrots", "--json", "--data-dir=" + data, "--model", "hash"]
    )
    assert res.exit_code == 0 and json.loads(res.output)["data"][0]["document"] == "sub/birds.html"
    # A subcommand's own option of the same name stays the subcommand's.
    from engram.cli.main import cli as group

    hoisted = group._hoist(["import", "--from-chroma", "x", "--model", "m", "--data-dir", "d"])  # type: ignore[attr-defined]
    assert hoisted == ["--data-dir", "d", "import", "--from-chroma", "x", "--model", "m"]


def test_reading_a_missing_data_directory_creates_nothing(tmp_path: Path) -> None:
    """A search (or a listing) on a mistyped --data-dir used to create it and a database."""
    missing = tmp_path / "typo"
    for args in (["search", "x"], ["collections"], ["docs"], ["delete", "k"]):
        res = CliRunner().invoke(cli, ["--data-dir", str(missing), "--model", "hash", *args])
        assert res.exit_code == 1 and "no engram database in" in res.output, (args, res.output)
        assert "engram ingest PATH" in res.output
    assert not missing.exists()


def test_any_locale_ingests_and_searches_accented_names(tmp_path: Path) -> None:
    """Under an ASCII locale without UTF-8 mode, accented file names and queries arrive as
    lone surrogates; the CLI still ingests, searches and prints them."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "café.txt").write_text("Le café est chaud.\n", encoding="utf-8")
    env = {**os.environ, "LC_ALL": "POSIX", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}
    run = ["--data-dir", str(tmp_path / "data"), "--model", "hash"]

    def engram_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
        code = "import sys; from engram.cli import main; sys.argv[0] = 'engram'; main()"
        return subprocess.run(
            [sys.executable, "-c", code, *run, *args], env=env, capture_output=True, timeout=120
        )

    ingest = engram_cli("ingest", str(docs))
    assert ingest.returncode == 0, ingest.stderr.decode(errors="replace")
    found = engram_cli("search", "café")
    assert found.returncode == 0, found.stderr.decode(errors="replace")
    assert "café.txt" in found.stdout.decode("utf-8")


def test_a_failed_ingest_leaves_no_empty_collection(tmp_path: Path) -> None:
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    settings = Settings.build(data_dir=tmp_path / "data", embedding_model="hash")
    with engram.open(settings=settings) as db:
        report = db.ingest(tmp_path / "broken.pdf", collection="newcol")
        assert report.failed == 1 and report.added == 0 and "broken.pdf" in report.errors[0][0]
        assert [c.name for c in db.collections()] == []
        missing = db.ingest(tmp_path / "nope.txt", collection="newcol", sync=True)
        assert missing.failed == 1 and [c.name for c in db.collections()] == []
        (tmp_path / "ok.txt").write_text("fine text")
        assert db.ingest(tmp_path / "ok.txt", collection="newcol").added == 1
        # An existing collection keeps its documents when a later ingest fails.
        assert db.ingest(tmp_path / "broken.pdf", collection="newcol").failed == 1
        assert db.collection("newcol").document_count == 1


def test_ingest_progress_counts_files_first_and_never_shows_zero(
    tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engram.cli import ingest as ingest_cli

    assert ingest_cli._count_files((str(corpus),), (), ()) == len(list(corpus.rglob("*.*")))
    assert ingest_cli._count_files(("-",), (), ()) is None  # stdin: unknown size
    assert ingest_cli._rate(0, 5.0) == "…" and ingest_cli._rate(3, 60.0, "docs") == "3 docs/min"
    assert ingest_cli._rate(50, 2.0) == "25/s"
    # Not a terminal: progress comes as plain lines (every 30 s; here at every step).
    monkeypatch.setattr(ingest_cli._ProgressLines, "EVERY", 0.0)
    res = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path / "d"), "--model", "hash", "ingest", str(corpus)]
    )
    assert res.exit_code == 0, res.output
    total = ingest_cli._count_files((str(corpus),), (), ())
    assert f"/{total} files" in res.output
    assert not re.search(r"(?<![0-9.])0(?: \w+)?/s", res.output)  # no "0/s", no "0 docs/s"


# -- start-up: `engram --help` and a subcommand's --help import no heavy module ---------------

HEAVY_MODULES = (
    "numpy",
    "pydantic",
    "engram.engine",
    "engram.store",
    "onnxruntime",
    "fastapi",
    "mcp",
)


@pytest.mark.parametrize(
    "args", [[], ["search"], ["ingest"], ["state", "put"], ["import"], ["mcp"]]
)
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    """`engram --help` answered in 0.5 s when importing the CLI imported the engine; a
    one-shot command's help must not load pydantic, numpy, the store or the model runtime."""
    code = (
        "import sys\n"
        "from engram.cli import cli\n"
        f"cli.main({[*args, '--help']!r}, prog_name='engram', standalone_mode=False)\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage: engram" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_lazy_command_table_matches_the_commands() -> None:
    """`engram --help` lists the subcommands from a table without importing their modules:
    the table names each command's module and repeats its help's first sentence, so the
    listing must equal what the loaded commands would print, at any terminal width."""
    from engram.cli.main import COMMANDS

    ctx = click.Context(cli, info_name="engram")
    for name, (module, help_text) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert command.callback is not None and command.callback.__module__ == (
            f"engram.cli.{module}"
        )
        assert not command.hidden and not command.short_help, name
        stub = click.Command(name, help=help_text)
        for width in range(10, 200):
            assert stub.get_short_help_str(width) == command.get_short_help_str(width), name
    # Every registered command is in the table (a new one must be added there).
    assert set(cli.commands) == set(COMMANDS)


def test_a_mistyped_command_gets_a_suggestion_from_every_command() -> None:
    """Commands load on first use; a name that is none of them still gets click's "Did you
    mean" from the whole list, loaded or not."""
    code = "from engram.cli import cli\ncli.main(['imprt', 'x'], prog_name='engram')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command 'imprt'. Did you mean 'import'?" in proc.stderr
