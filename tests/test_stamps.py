"""Unchanged files are skipped before they are parsed (engram.ingest.stamps), on every
backend: by size and modification time without being read, else by the hash of their bytes;
anything that decides their documents (bytes, loader options, chunk settings) parses again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engram
from engram.config import Settings
from engram.ingest import items
from engram.ingest.loaders import LoaderOptions
from engram.ingest.stamps import Stamp

OLD = time.time() - 3600  # a modification time old enough to be trusted (RACY_NS)


class Spy:
    """Counts the files the loaders parse, and the files read whole, by name."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.parsed: Counter[str] = Counter()
        self.read: Counter[str] = Counter()
        for name in ("load_path", "load_file_bytes"):
            real = getattr(items, name)
            monkeypatch.setattr(items, name, self._counting(real))
        real_read = Path.read_bytes

        def read_bytes(path: Path) -> bytes:
            self.read[path.name] += 1
            return real_read(path)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)

    def _counting(self, real: Any) -> Any:
        def load(path: Path, **kwargs: Any) -> Any:
            self.parsed[path.name] += 1
            return real(path, **kwargs)

        return load

    def reset(self) -> None:
        self.parsed.clear()
        self.read.clear()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    return Spy(monkeypatch)


def _age(*paths: Path, at: float = OLD) -> None:
    for path in paths:
        os.utime(path, (at, at))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Alpha\n\nAlpha talks about apples and orchards.\n")
    (root / "sub" / "b.html").write_text("<html><body><h1>Beta</h1><p>Bees.</p></body></html>")
    (root / "c.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"record {i} words"}) + "\n" for i in range(3))
    )
    _age(root / "a.md", root / "sub" / "b.html", root / "c.jsonl")
    return root


def _stamps(db: engram.Engram, source: Path) -> list[Stamp]:
    coll = db.collection("kb")
    rows = db.store.file_stamps(coll, [str(source)]).get(str(source), [])
    return [s for s in (Stamp.parse(r.stamp) for r in rows) if s is not None]


def test_unchanged_files_are_neither_read_nor_parsed(
    db: engram.Engram, folder: Path, spy: Spy
) -> None:
    first = db.ingest(folder, collection="kb")
    assert first.added == 5 and sum(spy.parsed.values()) == 3
    spy.reset()
    again = db.ingest(folder, collection="kb")
    assert (again.added, again.updated, again.unchanged, again.failed) == (0, 0, 5, 0)
    assert spy.parsed == {} and spy.read == {}
    single = db.ingest(folder / "a.md", collection="kb")  # a file named on its own
    assert single.unchanged == 1 and spy.parsed == {}


def test_a_touched_file_with_the_same_bytes_is_hashed_not_parsed_and_restamped(
    db: engram.Engram, folder: Path, spy: Spy
) -> None:
    db.ingest(folder, collection="kb")
    note = folder / "a.md"
    later = OLD + 60
    _age(note, at=later)
    spy.reset()
    report = db.ingest(folder, collection="kb")
    assert report.unchanged == 5 and report.updated == 0
    assert spy.parsed == {} and spy.read == {"a.md": 1}
    assert [s.mtime_ns for s in _stamps(db, note)] == [note.stat().st_mtime_ns]
    spy.reset()
    assert db.ingest(folder, collection="kb").unchanged == 5
    assert spy.read == {}  # the new time is known: not even read now
    assert db.document("a.md", collection="kb").version == 1


def test_a_modified_file_is_parsed_and_only_it(db: engram.Engram, folder: Path, spy: Spy) -> None:
    db.ingest(folder, collection="kb")
    (folder / "a.md").write_text("# Alpha\n\nAlpha talks about pears and orchards.\n")
    (folder / "c.jsonl").write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"record {i} WORDS"}) + "\n" for i in range(3))
    )
    spy.reset()
    report = db.ingest(folder, collection="kb")
    assert (report.updated, report.unchanged) == (4, 1)
    assert spy.parsed == {"a.md": 1, "c.jsonl": 1}
    assert "pears" in db.search("pears", collection="kb").results[0].text


def test_same_size_rewrite_within_the_clock_tick_is_not_missed(
    db: engram.Engram, folder: Path
) -> None:
    """A file written just before it was ingested may change again without a new time: its
    time is not trusted, so the next run compares bytes."""
    note = folder / "a.md"
    note.write_text("# Alpha\n\nfirst version\n")
    db.ingest(folder, collection="kb")
    assert [s.mtime_ns for s in _stamps(db, note)] == [-1]
    stat = note.stat()
    note.write_text("# Alpha\n\nzebra version\n")  # same size
    os.utime(note, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time
    report = db.ingest(folder, collection="kb")
    assert report.updated == 1
    assert db.search("zebra", collection="kb", mode="keyword").results[0].document_key == "a.md"


@pytest.mark.parametrize(
    "change",
    [
        {"loader": LoaderOptions(title_field="name")},
        {"reparse": True},
    ],
    ids=["loader-options", "reparse"],
)
def test_settings_that_decide_documents_parse_again(
    db: engram.Engram, folder: Path, spy: Spy, change: dict[str, Any]
) -> None:
    db.ingest(folder, collection="kb")
    spy.reset()
    with engram.open(settings=db.settings) as other:
        other.ingest(
            folder,
            collection="kb",
            loader_options=change.get("loader"),
            reparse=change.get("reparse", False),
        )
    assert sum(spy.parsed.values()) == 3
    spy.reset()
    with engram.open(settings=db.settings) as other:  # and the new stamps hold
        other.ingest(folder, collection="kb", loader_options=change.get("loader"))
    assert spy.parsed == {}


def test_chunk_settings_changed_later_apply_to_new_collections_only(
    db: engram.Engram, folder: Path, spy: Spy
) -> None:
    db.ingest(folder, collection="kb")
    spy.reset()
    settings = db.settings.model_copy(update={"chunk_tokens": 48})
    with engram.open(settings=settings) as other:
        other.ingest(folder, collection="kb")  # keeps the chunking it was created with
        assert spy.parsed == {}
        other.ingest(folder, collection="kb2")
        assert sum(spy.parsed.values()) == 3
        assert other.collection("kb2").settings["chunk_tokens"] == 48


def test_a_file_is_skipped_only_while_all_its_documents_carry_its_stamp(
    db: engram.Engram, folder: Path, spy: Spy
) -> None:
    db.ingest(folder, collection="kb")
    db.delete("r1", collection="kb")
    db.add([{"id": "r2", "text": "replaced by hand"}], collection="kb")
    spy.reset()
    report = db.ingest(folder, collection="kb")
    assert spy.parsed == {"c.jsonl": 1}
    assert (report.added, report.updated, report.unchanged) == (1, 1, 3)
    assert db.document("r2", collection="kb").version == 3


def test_sync_counts_skipped_files_as_present(db: engram.Engram, folder: Path, spy: Spy) -> None:
    db.ingest(folder, collection="kb")
    (folder / "sub" / "b.html").unlink()
    spy.reset()
    report = db.ingest(folder, collection="kb", sync=True)
    assert (report.deleted, report.unchanged) == (1, 4) and spy.parsed == {}
    assert sorted(d.key for d in db.documents("kb")) == ["a.md", "r0", "r1", "r2"]


def test_a_file_with_a_failed_record_is_parsed_and_reported_every_time(
    db: engram.Engram, folder: Path, spy: Spy
) -> None:
    bad = folder / "d.jsonl"
    bad.write_text('{"id": "ok", "text": "fine"}\n{not json\n')
    _age(bad)
    assert db.ingest(folder, collection="kb").failed == 1
    spy.reset()
    again = db.ingest(folder, collection="kb")
    assert again.failed == 1 and spy.parsed == {"d.jsonl": 1}


def test_a_duplicate_key_in_a_skipped_file_is_still_reported(
    db: engram.Engram, folder: Path
) -> None:
    db.ingest(folder, collection="kb")
    clash = folder / "b.jsonl"  # loaded before c.jsonl, with one of its record ids
    clash.write_text(json.dumps({"id": "r0", "text": "record 0 words"}) + "\n")
    _age(clash)
    report = db.ingest(folder, collection="kb")
    assert report.failed == 1 and "duplicate document key 'r0'" in report.errors[0][1]


WRITER = """
import sys, engram
from engram.config import Settings
settings = Settings.build(
    data_dir=sys.argv[1], embedding_model="hash", chunk_tokens=64, chunk_overlap=8
)
with engram.open(settings=settings) as db:
    for _ in range(int(sys.argv[3])):
        report = db.ingest(sys.argv[2], collection="kb", sync=True)
        assert report.failed == 0, report.errors
"""


@pytest.fixture(params=["sqlite", "postgres"])
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    if request.param == "postgres":
        env["ENGRAM_DATABASE_URL"] = request.getfixturevalue("pg_url")
    yield env


def test_two_processes_ingesting_one_changing_folder_leave_no_stale_stamp(
    tmp_path: Path, database_env: dict[str, str]
) -> None:
    """Two processes re-ingest one folder at once while its files are rewritten and touched:
    then a skipping ingest gives exactly the documents a full parse gives."""
    root = tmp_path / "docs"
    root.mkdir()

    def put(path: Path, text: str) -> None:  # whole: a reader never sees half a file
        path.with_suffix(".tmp").write_text(text)
        path.with_suffix(".tmp").replace(path)

    def write(round_: int) -> None:
        for i in range(24):
            text = f"# File {i}\n\nround {round_ if i % 3 == 0 else 0} of file {i} words{i}\n"
            path = root / f"f{i}.md"
            if i % 3 == 1:  # touched: same bytes, a new time
                if not path.exists():
                    put(path, text)
                os.utime(path, (OLD + round_, OLD + round_))
            else:
                put(path, text)
        records = [{"id": f"r{i}", "text": f"rec {i} r{round_ % 2}"} for i in range(5)]
        put(root / "r.jsonl", "".join(json.dumps(r) + "\n" for r in records))

    url = database_env.get("ENGRAM_DATABASE_URL")
    settings = Settings.build(
        data_dir=tmp_path / "data",
        embedding_model="hash",
        chunk_tokens=64,
        chunk_overlap=8,
        database_url=url,
    )
    write(0)
    with engram.open(settings=settings) as db:
        db.ingest(root, collection="kb")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path / "data"), str(root), "4"],
            env=database_env,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for round_ in range(1, 6):
        write(round_)
        time.sleep(0.05)
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    with engram.open(settings=settings) as db:
        db.ingest(root, collection="kb", sync=True)
        db.ingest(root, collection="fresh", reparse=True)
        skipping = {d.key: d.content_hash for d in db.documents("kb", limit=1000)}
        full = {d.key: d.content_hash for d in db.documents("fresh", limit=1000)}
    assert skipping == full and len(full) == 29


def test_cli_reports_skipped_files_as_unchanged_and_reparse_parses_them(
    tmp_path: Path, folder: Path, spy: Spy, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from engram.cli import cli

    monkeypatch.setenv("ENGRAM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(folder)]).exit_code == 0
    spy.reset()
    res = runner.invoke(cli, ["ingest", str(folder)])
    assert res.exit_code == 0 and "0 added, 0 updated, 5 unchanged, 0 deleted" in res.output
    res = runner.invoke(cli, ["ingest", str(folder), "--json"])
    assert json.loads(res.output)["unchanged"] == 5 and spy.parsed == {}
    res = runner.invoke(cli, ["ingest", str(folder), "--reparse", "--json"])
    assert json.loads(res.output)["unchanged"] == 5 and sum(spy.parsed.values()) == 3
