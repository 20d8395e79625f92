"""The automatic vector weight (alpha "auto", the default): the rule, and how a search, a
collection, the settings and a request choose between it and a fixed weight."""

from __future__ import annotations

import pytest

import engram
from engram.config import Settings
from engram.errors import InvalidInput
from engram.search.analyzer import english_markers
from engram.search.fusion import (
    AUTO_AT_PIVOT,
    AUTO_BOUNDS,
    AUTO_PIVOT,
    FOREIGN_ALPHA,
    auto_alpha,
    check_alpha,
    fuse,
    resolve_alpha,
)


def test_the_rule_weighs_the_vector_leg_less_as_the_query_grows() -> None:
    weights = [auto_alpha(n) for n in range(0, 60)]
    assert all(a >= b for a, b in zip(weights, weights[1:]))  # never more for a longer query
    assert weights[0] == weights[1] == weights[AUTO_PIVOT] == AUTO_AT_PIVOT
    assert weights[-1] == AUTO_BOUNDS[0] < weights[AUTO_PIVOT + 3] < AUTO_AT_PIVOT
    assert all(AUTO_BOUNDS[0] <= a <= AUTO_BOUNDS[1] for a in weights)


def test_resolve_and_check() -> None:
    assert resolve_alpha("auto", 4) == (auto_alpha(4), "auto: 4 query words")
    assert resolve_alpha("auto", 1) == (auto_alpha(1), "auto: 1 query word")
    assert resolve_alpha(0.3, 40) == (0.3, "fixed")
    assert resolve_alpha("auto", 4, foreign=True) == (0.9, "auto: an English query on French text")
    assert resolve_alpha(0.3, 4, foreign=True) == (0.3, "fixed")
    assert check_alpha("auto") == "auto" and check_alpha(1) == 1.0
    for bad in (1.5, -0.1, "0.5", "high", True, None):
        with pytest.raises(ValueError, match="alpha"):
            check_alpha(bad)


def test_on_constructed_legs_the_short_query_follows_the_vector_leg() -> None:
    # The legs disagree on the best candidate (the keyword leg: 1, the vector leg: 2), and
    # the vector leg's choice wins from alpha 0.65 on.
    keyword = [(1, 9.0), (2, 3.0), (3, 2.0), (4, 1.8), (5, 1.5)]
    vector = [(2, 0.9), (1, 0.7), (3, 0.55), (4, 0.5), (5, 0.45)]
    assert fuse(keyword, vector, alpha=0.6)[0].id == 1
    assert fuse(keyword, vector, alpha=0.65)[0].id == 2
    short = fuse(keyword, vector, alpha=resolve_alpha("auto", 2)[0])
    long = fuse(keyword, vector, alpha=resolve_alpha("auto", 30)[0])
    assert short[0].id == 2 and long[0].id == 1


def _db(tmp_path, **overrides):  # type: ignore[no-untyped-def]
    db = engram.open(tmp_path / "d", embedding_model="hash", **overrides)
    db.add(
        [{"id": f"d{i}", "text": f"tea {'green ' * i}hills {i} of the valley"} for i in range(8)]
    )
    return db


def _fused(db: engram.Engram, query: str, **options: object) -> dict[str, object]:
    fused: dict[str, object] = db.search(query, **options).results[0].explain["fused"]  # type: ignore[arg-type]
    return fused


def test_a_search_explains_the_weight_it_chose(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _db(tmp_path) as db:
        assert db.settings.fusion_alpha == "auto"
        short = _fused(db, "green tea")
        assert (short["alpha"], short["alpha_from"]) == (auto_alpha(2), "auto: 2 query words")
        words = "green tea hills valley " * 4  # repeats count: 16 words
        long = _fused(db, words)
        assert (long["alpha"], long["alpha_from"]) == (auto_alpha(16), "auto: 16 query words")
        assert long["alpha"] < short["alpha"]  # type: ignore[operator]
        # A request's own weight wins, and "auto" may be asked for by name.
        assert _fused(db, "green tea", alpha=0.2)["alpha"] == 0.2
        assert _fused(db, "green tea", alpha="auto")["alpha_from"] == "auto: 2 query words"
        with pytest.raises(InvalidInput, match="alpha"):
            db.search("green tea", alpha="max")  # type: ignore[arg-type]


def test_a_fixed_setting_or_collection_weight_is_kept(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with _db(tmp_path, fusion_alpha=0.7) as db:
        assert _fused(db, "green tea hills") == {**_fused(db, "green tea hills"), "alpha": 0.7}
        assert _fused(db, "green tea hills")["alpha_from"] == "fixed"
        db.create_collection("own", language="en", fusion_alpha="auto")
        db.add([{"id": "x", "text": "green tea hills"}], collection="own")
        assert _fused(db, "green tea hills", collection="own")["alpha_from"].startswith("auto")  # type: ignore[union-attr]
        # Several collections that differ take the settings' weight.
        both = _fused(db, "green tea hills", collection=["own", "default"])
        assert both["alpha"] == 0.7
        with pytest.raises(InvalidInput, match="fusion_alpha"):
            db.create_collection("bad", language="en", fusion_alpha=2.0)


def test_the_setting_reads_auto_or_a_number_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ENGRAM_FUSION_ALPHA", "0.6")
    assert Settings.build().fusion_alpha == 0.6
    monkeypatch.setenv("ENGRAM_FUSION_ALPHA", "auto")
    assert Settings.build().fusion_alpha == "auto"
    monkeypatch.setenv("ENGRAM_FUSION_ALPHA", "1.5")
    with pytest.raises(Exception, match="ENGRAM_FUSION_ALPHA|fusion_alpha"):
        Settings.build()


def test_both_backends_choose_the_same_weight(db: engram.Engram) -> None:
    db.add([{"id": f"d{i}", "text": f"green tea hills {i}"} for i in range(5)])
    fused = db.search("green tea grown on hills").results[0].explain["fused"]
    assert (fused["alpha"], fused["alpha_from"]) == (auto_alpha(4), "auto: 4 query words")
    memory = db.memory.add("I drink green tea", user_id="u")
    assert memory and db.memory.search("green tea", user_id="u")  # memories fuse with it too


FRENCH_PAGES = [
    {"id": f"p{i}", "text": f"Copier des fichiers et des répertoires, version {i}. " * 3}
    for i in range(20)
]
ENGLISH_PAGES = [
    {"id": f"e{i}", "text": f"Copy the files of one directory to another one, version {i}."}
    for i in range(20)
]


def test_english_markers() -> None:
    assert english_markers("copy the files of a directory", "fr") == ["of", "the"]
    assert english_markers("copier les fichiers d'un répertoire", "fr") == []
    assert english_markers("copy the fichiers des répertoires", "fr") == []  # "des": French
    assert english_markers("copy files", "fr") == []  # nothing to tell
    assert english_markers("copy the files", "en") == []  # only French collections


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_english_query_on_french_text_leans_on_the_vector_leg(
    tmp_path, backend: str, request: pytest.FixtureRequest
) -> None:  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("pg_url") if backend == "postgres" else None
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", database_url=url)
    with engram.open(settings=settings) as db:
        db.create_collection("pages", language="fr")
        db.add(FRENCH_PAGES, collection="pages")
        english = _fused(db, "copy the files of a directory", collection="pages")
        assert (english["alpha"], english["alpha_from"]) == (
            FOREIGN_ALPHA,
            "auto: an English query on French text",
        )
        french = _fused(db, "copier les fichiers d'un répertoire", collection="pages")
        assert str(french["alpha_from"]).endswith("query words")
        assert _fused(db, "copy the files", collection="pages", alpha=0.3)["alpha"] == 0.3
        # A French collection that holds English text too: its words may match. The English
        # pages come from another engine (another process's view of the data directory or
        # database): this one's keyword index catches up before it counts.
        with engram.open(settings=settings) as other:
            other.add(ENGLISH_PAGES, collection="pages")
        mixed = _fused(db, "copy the files of a directory", collection="pages")
        assert str(mixed["alpha_from"]).endswith("query words")
