"""Identifiers in keyword search (analysis version 2): an article of a French code is found
by its number however it is written ("L. 123-22", "L123-22", "L 123-22"), joined numbers are
terms of their own, numbers are never "corrected" into their neighbours, and a collection
created before keeps the analysis it was indexed with."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import engram
from engram.config import Settings
from engram.search.analyzer import ANALYSIS_VERSION, analyzer_for, get_analyzer


@pytest.mark.parametrize(
    ("text", "french", "english"),
    [
        ("Article L. 123-22 du code de commerce", ["l123-22", "123-22"], ["123-22"]),
        ("l'article L123-22", ["l123-22", "123-22"], []),
        ("art. L 123-22.", ["l123-22", "123-22"], ["123-22"]),
        ("R. 441-6-1 et D.123", ["r441-6-1", "441-6-1", "d123"], ["441-6-1"]),
        ("L. 110", ["l110"], []),
        ("il a 3 ans, page 12, article 1240", [], []),  # plain numbers are words already
        ("A4, IL-6, covid-19, v2.4, 14,5 kg", [], []),  # digits inside words
        ("section 3.2.1 en 2019-2020", ["3.2.1", "2019-2020"], ["3.2.1", "2019-2020"]),
        ("total. 12 et val 3", [], []),  # a word's last letter is no code
    ],
)
def test_identifiers(text: str, french: list[str], english: list[str]) -> None:
    assert get_analyzer("fr", 2).identifiers(text) == french
    assert get_analyzer("en", 2).identifiers(text) == english
    assert set(french) <= set(get_analyzer("fr", 2).terms(text))
    assert not set(french) & set(get_analyzer("fr", 1).terms(text))  # version 1: words only


ARTICLES = [
    {
        "id": "L123-22",
        "title": "Code de commerce, article L. 123-22",
        "text": "Article L. 123-22. Les documents comptables sont établis en euros et en français.",
    },
    {
        "id": "L123-21",
        "title": "Code de commerce, article L. 123-21",
        "text": "Article L. 123-21. La comptabilité est tenue en euros; pièces gardées dix ans.",
    },
    {
        "id": "R123-22",
        "title": "Code de commerce, article R. 123-22",
        "text": "Article R. 123-22. Les documents comptables sont tenus sans blanc ni altération.",
    },
    {
        "id": "L22-123",
        "title": "Code de commerce, article L. 22-123",
        "text": "Article L. 22-123. Les documents sociaux sont déposés au greffe dans le mois.",
    },
]


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    return Settings.build(data_dir=tmp_path, embedding_model="hash", database_url=url)


@pytest.mark.parametrize(
    "query",
    [
        "Que dit l'article L123-22 ?",
        "article L. 123-22 du code de commerce",
        "art L 123-22 documents comptables",
    ],
)
def test_an_article_is_found_by_its_number(settings: Settings, query: str) -> None:
    with engram.open(settings=settings) as db:
        db.create_collection("code", language="fr")
        db.add(ARTICLES, collection="code")
        hits = db.search(query, collection="code", mode="keyword", k=4).results
        assert hits[0].document_key == "L123-22", [h.document_key for h in hits]
        assert "<mark>L. 123-22</mark>" in (hits[0].highlight or "")  # marked whole
        # an absent article is not "corrected" into its neighbours (L. 123-22, L. 123-21)
        assert db.search("L123-29", collection="code", mode="keyword").results == []


def test_numbers_are_not_typos(settings: Settings) -> None:
    with engram.open(settings=settings) as db:
        db.add(
            [{"id": "a", "text": "Article 1240 of the civil code: fault and damage."}],
            collection="kb",
        )
        assert db.search("1240", collection="kb", mode="keyword").results
        assert db.search("1241", collection="kb", mode="keyword").results == []
        assert db.search("civill", collection="kb", mode="keyword").results  # words still are


def test_a_collection_keeps_the_analysis_it_was_created_with(settings: Settings) -> None:
    with engram.open(settings=settings) as db:
        new = db.create_collection("new", language="fr")
        assert new.settings["analysis"] == ANALYSIS_VERSION == 2
        # One created before analysis versions were recorded is analyzed as version 1, at
        # ingest and at query time alike, until it is rebuilt.
        old = dataclasses.replace(new, settings={"chunk_tokens": 256})
        assert analyzer_for(old).version == 1 and analyzer_for(new).version == 2
