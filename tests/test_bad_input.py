"""Bad input gets a clear error and loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import engram
from engram.errors import CollectionNotFound, ConfigError, InvalidInput, ModelMismatch, QueryTooLong
from engram.search.filters import normalize_where, parse_where_args


@pytest.fixture
def filled(db: engram.Engram, corpus: Path) -> engram.Engram:
    db.ingest(corpus)
    return db


def _intact(db: engram.Engram, documents: int = 5) -> None:
    assert db.collection().document_count == documents
    assert db.search("parrots", mode="keyword").results[0].document_key == "sub/birds.html"


def test_missing_file_is_reported_not_fatal(
    filled: engram.Engram, corpus: Path, tmp_path: Path
) -> None:
    report = filled.ingest([tmp_path / "nope.txt", corpus / "dogs.txt"])
    assert report.failed == 1 and report.unchanged == 1
    assert report.errors == [(str(tmp_path / "nope.txt"), "no such file or directory")]
    _intact(filled)


def test_corrupt_and_garbage_files(filled: engram.Engram, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.pdf").write_bytes(b"%PDF-1.4\n this is not really a pdf \x00\x01")
    (bad / "noise.txt").write_bytes(bytes(range(256)) * 100)
    (bad / "empty.md").write_text("   \n\n")
    (bad / "good.txt").write_text("A perfectly good document about volcanoes.")
    report = filled.ingest(bad, collection="default")
    assert report.added == 1 and report.failed == 3
    reasons = dict(report.errors)
    assert set(reasons) == {str(bad / n) for n in ("broken.pdf", "noise.txt", "empty.md")}
    assert all(reasons.values())
    _intact(filled, documents=6)
    assert filled.search("volcanoes", mode="keyword").results[0].document_key == "good.txt"


@pytest.mark.parametrize(
    ("query", "error", "text"),
    [
        ("", InvalidInput, "empty"),
        ("   \n\t ", InvalidInput, "empty"),
        ("x" * 1_000_000, QueryTooLong, "1,000,000 characters"),
    ],
)
def test_bad_queries(filled: engram.Engram, query: str, error: type, text: str) -> None:
    with pytest.raises(error, match=text) as info:
        filled.search(query)
    assert info.value.status in (413, 422)
    _intact(filled)


def test_bad_search_arguments(filled: engram.Engram) -> None:
    with pytest.raises(InvalidInput, match="k must be"):
        filled.search("cats", k=0)
    with pytest.raises(InvalidInput, match="unknown mode"):
        filled.search("cats", mode="semantic")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="operator"):
        filled.search("cats", where={"year": {"$regex": "x"}})
    with pytest.raises(CollectionNotFound, match="existing collections: default"):
        filled.search("cats", collection="nope")


def test_a_collection_keeps_its_model_and_one_that_cannot_load_is_refused(
    settings, corpus: Path
) -> None:
    with engram.open(settings=settings) as db:
        db.ingest(corpus)
        db.store.create_collection(
            "lost", model_id="my-own-model", dimension=64, language="en", settings={}
        )
    other = settings.model_copy(update={"embedding_model": "hash-32"})
    with engram.open(settings=other) as db:
        # Another configured model: the collection is still embedded by its own (hash-64).
        assert db.ingest(corpus).unchanged == 5
        assert db.search("parrots").results[0].document_key == "sub/birds.html"
        assert db.embedder().model_id == "hash-32"
        # A model known only by its id (a directory, say) cannot be found from it.
        with pytest.raises(ModelMismatch) as info:
            db.add([{"id": "x", "text": "a parrot"}], collection="lost")
        assert "my-own-model" in info.value.message and "--model" in (info.value.hint or "")
        with pytest.raises(ModelMismatch):
            db.search("parrots", collection="lost")
        # Keyword search does not need the model and still works.
        assert not db.search("parrots", collection="lost", mode="keyword").results
    with engram.open(settings=settings) as db:
        _intact(db)


def test_bad_settings_name_key_value_and_origin(monkeypatch) -> None:
    with pytest.raises(ConfigError, match=r"chunk_tokens=3 \(from argument\)"):
        engram.open(chunk_tokens=3)
    monkeypatch.setenv("ENGRAM_FUSION_ALPHA", "7")
    with pytest.raises(ConfigError, match="ENGRAM_FUSION_ALPHA"):
        engram.Settings.build()


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["kind=paper"], {"kind": {"$eq": "paper"}}),
        (["year>=2020", "year<2024"], {"year": {"$gte": 2020, "$lt": 2024}}),
        (["lang in en,fr"], {"lang": {"$in": ["en", "fr"]}}),
        (["author exists"], {"author": {"$exists": True}}),
        (["draft!=true"], {"draft": {"$ne": True}}),
        (["title contains Tax law"], {"title": {"$contains": "Tax law"}}),
    ],
)
def test_cli_filter_syntax(args: list[str], where: dict) -> None:
    assert parse_where_args(args) == where


def test_unparseable_filter() -> None:
    with pytest.raises(InvalidInput, match="cannot parse filter"):
        parse_where_args(["just words"])


@pytest.mark.parametrize(
    ("arg", "message", "hint"),
    [
        ("year=>2020", "the value starts with '>'", "did you mean year>=2020?"),
        ("team==it", "the value starts with '='", "did you mean team=it?"),
        ("size=<3", "the value starts with '<'", "did you mean size<=3?"),
        ("year>=twenty", ">= takes a number or a date", 'year>="twenty"'),
        ("year<next", "< takes a number or a date", "year<2020"),
    ],
)
def test_malformed_filters_are_refused_with_the_syntax(arg: str, message: str, hint: str) -> None:
    """These used to succeed silently ("No results.", exit 0)."""
    with pytest.raises(InvalidInput, match=message) as info:
        parse_where_args([arg])
    assert hint in (info.value.hint or "")


def test_range_filters_take_numbers_dates_and_quoted_text() -> None:
    assert parse_where_args(["date>=2024-01-01", "year<2024", 'name>="m"']) == {
        "date": {"$gte": "2024-01-01"},
        "year": {"$lt": 2024},
        "name": {"$gte": "m"},
    }


def test_a_failed_file_is_named_once(filled: engram.Engram, tmp_path: Path) -> None:
    """Used to print "failed: X: X: unsupported format"."""
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    report = filled.ingest(bad)
    ((source, reason),) = report.errors
    assert source == str(bad) and str(bad) not in reason


def test_postgres_without_psycopg_says_what_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "import engram\n"
        "try:\n"
        f"    engram.open({str(tmp_path)!r}, embedding_model='hash',"
        " database_url='postgresql://u@127.0.0.1:1/db')\n"
        "except engram.EngramError as e:\n"
        "    print(type(e).__name__, '|', e.hint)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == 'MissingDependency | pip install "engram[postgres]"', out.stderr


@pytest.mark.parametrize(
    "where",
    [
        {"$or": []},
        {"$or": [{}]},
        {"$or": {"a": 1}},
        {"$not": []},
        {"$and": [{"a": 1}]},
        {"a": {"$contains": 3}},
        {"a": {"$contains": ""}},
    ],
)
def test_malformed_combined_filters_are_refused(where: dict) -> None:
    with pytest.raises(InvalidInput):
        normalize_where(where)
