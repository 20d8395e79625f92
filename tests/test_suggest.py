"""Autocompletion (engram.search.suggest): terms shown as written, titles, past queries;
accent folding, typo tolerance, ranking, tenants, erasure, two processes; HTTP, CLI, clients."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import engram
from engram.cli import cli
from engram.config import Settings
from engram.errors import CollectionNotFound, InvalidInput
from engram.search.bm25 import BM25Index
from engram.search.suggest import Suggestion, normal, one_edit_prefixes
from engram.search.titles import TitleIndex
from engram.server import create_app
from engram.store.records import EventWrite

FR = [
    {
        "id": "rh/teletravail.md",
        "title": "Le télétravail dans la fonction publique",
        "text": "Le télétravail est une forme d'organisation du travail. Le télétravail est"
        " volontaire. Les télétravailleurs ont les mêmes droits. Télétravail et santé.",
    },
    {
        "id": "rh/conges.md",
        "title": "Congés payés",
        "text": "Les congés payés se prennent après accord. Le télétravail ne change rien aux"
        " congés. La réglementation des congés est fixée par le règlement intérieur.",
    },
    {
        "id": "rh/teleconsultation.md",
        "title": "Téléconsultation",
        "text": "La téléconsultation médicale est remboursée.",
    },
]
EN = [
    {"id": "cats.md", "title": "Cats", "text": "Cats are running, cats run, the cat runner."},
    {"id": "dogs.md", "title": "Running with dogs", "text": "Dogs love running and running."},
]


def texts(found: list[Suggestion], source: str | None = None) -> list[str]:
    return [s.text for s in found if source is None or s.source == source]


@pytest.fixture
def fr(db: engram.Engram) -> engram.Engram:
    db.create_collection("rh", language="fr")
    db.add(FR, collection="rh")
    return db


# -- pure parts --------------------------------------------------------------------------------
def test_one_edit_prefixes_are_exactly_the_words_within_one_edit() -> None:
    from rapidfuzz.distance import OSA  # one edit: a transposition too

    variants = one_edit_prefixes("telwtr")
    assert "teletr" in variants and "telwtr" not in variants
    # no variant extends another: their ranges do not overlap
    assert not any(a != b and b.startswith(a) for a in variants for b in variants)
    for word in ["teletravail", "telwtravail", "tlwtravail", "telwxyz", "tewltr", "elwtr"]:
        near = any(word.startswith(v) for v in [*variants, "telwtr"])
        best = min(OSA.distance("telwtr", word[:n]) for n in range(len(word) + 1))
        assert near == (best <= 1), word


def test_normal_form_folds_accents_case_and_punctuation() -> None:
    assert normal("  Le Télétravail, l'été ") == "le teletravail l ete"


def test_bm25_completions_and_tombstones() -> None:
    index = BM25Index()
    index.apply({1: "teletravail sante", 2: "teletravail conge", 3: "telephon"}, [], 3)
    assert index.completions(["tele"], 10) == [("teletravail", 2), ("telephon", 1)]
    index.apply({4: "telecopi"}, [1, 2], 4)  # a new term sorted in, a term gone to zero
    assert index.completions(["tele"], 10) == [("telecopi", 1), ("telephon", 1)]
    assert index.completions(["x"], 10, exact=["sante", "nothing"]) == []
    assert index.completions(["zz"], 10, exact=["telephon"]) == [("telephon", 1)]


def test_bm25_completions_match_brute_force_through_changes() -> None:
    """Long ranges are remembered and short prefixes looked up in a set of term heads: both
    must follow additions and deletions (oracle: the live terms' frequencies, sorted)."""
    rng = random.Random(7)
    words = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 7))) for _ in range(1500)]
    index, chunks, next_id = BM25Index(), {}, 1
    for step in range(12):
        adds = {next_id + i: " ".join(rng.sample(words, 8)) for i in range(40)}
        next_id += 40
        removes = rng.sample(sorted(chunks), min(len(chunks), 15))
        index.apply(adds, removes, step + 1)
        chunks.update(adds)
        for chunk_id in removes:
            del chunks[chunk_id]
        df = Counter(t for text in chunks.values() for t in set(text.split()))
        for prefix in ["a", "ab", "b", "cab", "abca", "ccc", "d", "abd"]:
            for limit in (3, 10, 70):
                expected = sorted(
                    ((t, n) for t, n in df.items() if t.startswith(prefix)),
                    key=lambda item: (-item[1], item[0]),
                )[:limit]
                assert index.completions([prefix], limit)[:limit] == expected, (step, prefix)


def test_title_index_matches_a_scan() -> None:
    """TitleIndex (bisection of word starts, long ranges remembered) against the definition:
    titles with a word starting with the prefix, most documents first, then titles the prefix
    starts, then title order."""
    rng = random.Random(3)
    vocab = ["al", "alpha", "alp", "be", "beta", "b", "gamma", "g", "al be", "ga"]
    titles = {
        " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 4))).title() + f" {i % 7}": (
            rng.randint(1, 3)
        )
        for i in range(600)
    }
    index = TitleIndex(1, titles, normal)
    for prefix in ["a", "al", "al b", "alp", "be", "b", "g", "gam", "zz", "1", "alpha be"]:
        for limit in (1, 5, 50):
            matching = [t for t in titles if f" {normal(t)}".find(f" {prefix}") >= 0]
            ranked = sorted((-titles[t], not normal(t).startswith(prefix), t) for t in matching)
            expected = [(t, titles[t]) for _, _, t in ranked[:limit]]
            assert index.matching(prefix, limit) == expected, (prefix, limit)


# -- both backends -----------------------------------------------------------------------------
def test_terms_are_shown_as_written_accent_folded(fr: engram.Engram) -> None:
    for prefix in ["télétr", "teletr", "TELETR", "Télétr"]:
        found = fr.suggest(prefix, collection="rh")
        assert "télétravail" in texts(found, "term"), (prefix, found)
        assert texts(found, "title")[0] == "Le télétravail dans la fonction publique"
    # the most frequent word of the stem comes first, the rarer variant after it
    terms = texts(fr.suggest("teletr", collection="rh"), "term")
    assert terms.index("télétravail") < terms.index("télétravailleurs")
    # typed past the stem: the word that starts with what was typed
    assert texts(fr.suggest("télétravailleu", collection="rh"), "term") == ["télétravailleurs"]
    assert "règlement" in texts(fr.suggest("reglem", collection="rh"), "term")


def test_ranked_by_document_frequency(fr: engram.Engram) -> None:
    terms = [s for s in fr.suggest("tél", collection="rh") if s.source == "term"]
    assert terms[0].text == "télétravail" and terms[0].count == 2
    assert [s.count for s in terms] == sorted((s.count for s in terms), reverse=True)


def test_typo_tolerance(fr: engram.Engram) -> None:
    for prefix in ["tlétr", "telwtr", "tleetr", "téletrz"]:
        found = fr.suggest(prefix, collection="rh")
        assert "télétravail" in texts(found, "term"), (prefix, found)
        assert "Le télétravail dans la fonction publique" in texts(found, "title")
    assert fr.suggest("tlé", collection="rh") == []  # under 4 letters: as typed only


def test_several_words_complete_the_last(fr: engram.Engram) -> None:
    found = fr.suggest("droit du télétr", collection="rh")
    assert "droit du télétravail" in texts(found, "term")
    assert "Congés payés" in texts(fr.suggest("conges pa", collection="rh"), "title")


def test_english(db: engram.Engram) -> None:
    db.create_collection("pets", language="en")
    db.add(EN, collection="pets")
    found = db.suggest("runn", collection="pets")
    assert texts(found, "title") == ["Running with dogs"]
    assert texts(found, "term")[0] == "running"  # stem "run": its most frequent "runn..." word
    # the word "cats" (most frequent of stem "cat") is the title "Cats" already: proposed once
    assert texts(db.suggest("cat", collection="pets")) == ["Cats"]


def test_past_queries_per_collection_ranked_by_times_asked(fr: engram.Engram) -> None:
    def asked(query: str, n: int, collection: str = "rh", results: int = 3) -> None:
        fr.store.record_events(
            [
                EventWrite("default", "search", query=query, result_count=results,
                           data={"collection": collection})
                for _ in range(n)
            ]
        )  # fmt: skip

    asked("télétravail droits", 1)
    asked("télétravail santé", 3)
    asked("télétravail et congés", 1, results=0)  # found nothing: not proposed
    asked("télétravail ailleurs", 5, collection="other")
    found = fr.suggest("teletr", collection="rh")
    assert texts(found, "query") == ["télétravail santé", "télétravail droits"]
    assert found[0] == Suggestion("télétravail santé", "query", 3)
    # interleaved: a query, a title, a term, ...
    assert [s.source for s in found[:3]] == ["query", "title", "term"]
    asked("télétravail droits", 3)  # counted from the events at the next suggestion
    assert texts(fr.suggest("teletr", collection="rh"), "query")[0] == "télétravail droits"


def test_erasure_removes_a_users_past_queries(fr: engram.Engram) -> None:
    fr.store.record_events(
        [
            EventWrite("default", "search", user_id="u1", query="télétravail secret",
                       result_count=1, data={"collection": "rh"}),
            EventWrite("default", "search", user_id="u2", query="télétravail santé",
                       result_count=1, data={"collection": "rh"}),
        ]
    )  # fmt: skip
    assert "télétravail secret" in texts(fr.suggest("télé", collection="rh"), "query")
    fr.memory.erase_user("u1")
    assert texts(fr.suggest("télé", collection="rh"), "query") == ["télétravail santé"]
    fr.store.delete_user_events(tenant="default", user_id="u2")
    assert texts(fr.suggest("télé", collection="rh"), "query") == []


def test_tenants_never_see_each_others_words(db: engram.Engram) -> None:
    db.create_collection("rh", language="fr", tenant="acme")
    db.add(FR, collection="rh", tenant="acme")
    db.create_collection("rh", language="fr", tenant="globex")
    db.add([{"id": "x", "title": "Téléphonie", "text": "La téléphonie."}],
           collection="rh", tenant="globex")  # fmt: skip
    db.store.record_events(
        [EventWrite("acme", "search", query="télétravail santé", result_count=1,
                    data={"collection": "rh"})]
    )  # fmt: skip
    seen = texts(db.suggest("télé", collection="rh", tenant="globex"))
    assert seen == ["Téléphonie"]  # the title; the word "téléphonie" is the same text
    assert "télétravail santé" in texts(db.suggest("télé", collection="rh", tenant="acme"))
    with pytest.raises(CollectionNotFound):
        db.suggest("télé", collection="rh", tenant="initech")


def test_a_term_added_by_another_process_is_suggested(
    db: engram.Engram, settings: Settings
) -> None:
    db.create_collection("rh", language="fr")
    db.add(FR[:1], collection="rh")
    assert texts(db.suggest("congé", collection="rh")) == []
    assert texts(db.suggest("con", collection="rh")) == []  # too short for the typo path
    with engram.open(settings=settings) as other:  # its own indexes and caches
        other.add(FR[1:2], collection="rh")
        other.store.record_events(
            [EventWrite("default", "search", query="congés payés", result_count=2,
                        data={"collection": "rh"})]
        )  # fmt: skip
    found = db.suggest("congé", collection="rh")
    assert texts(found) == ["congés payés", "Congés payés", "congés"] or set(texts(found)) >= {
        "congés payés",
        "congés",
    }
    # this process's caches (titles, words, completions) follow the other's writes
    assert texts(db.suggest("con", collection="rh")) == ["congés payés", "congés"]
    db.delete(["rh/conges.md"], collection="rh")
    assert texts(db.suggest("congé", collection="rh"), "term") == []
    assert texts(db.suggest("con", collection="rh")) == ["congés payés"]  # the past query


def test_invalid_prefixes(fr: engram.Engram) -> None:
    for bad in ["", "   ", "x" * 201]:
        with pytest.raises(InvalidInput):
            fr.suggest(bad, collection="rh")
    with pytest.raises(InvalidInput):
        fr.suggest("tele", collection="rh", limit=0)
    assert fr.suggest("!!", collection="rh") == []
    assert len(fr.suggest("t", collection="rh", limit=2)) == 2


# -- HTTP, clients, CLI ------------------------------------------------------------------------
@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.build(
        data_dir=tmp_path / "server", embedding_model="hash", chunk_tokens=64, auth="none"
    )
    with TestClient(create_app(settings)) as c:
        assert c.post("/v1/collections", json={"name": "rh", "language": "fr"}).status_code == 201
        res = c.post("/v1/collections/rh/documents:batch", json={"documents": FR})
        assert res.status_code == 201, res.text
        yield c


def test_http_suggest_and_past_searches(http: TestClient) -> None:
    res = http.get("/v1/collections/rh/suggest", params={"q": "teletr", "limit": 3})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["count"] == len(body["data"]) == 3
    assert {"text": "télétravail", "source": "term", "count": 2} in body["data"]
    for query in ["télétravail santé", "télétravail santé", "xyzzy"]:  # xyzzy: no result
        http.post("/v1/search", json={"query": query, "collection": "rh", "mode": "keyword"})
    http.get("/v1/admin/stats")  # writes the buffered events
    body = http.get("/v1/collections/rh/suggest", params={"q": "Télétravail s"}).json()
    assert body["data"][0] == {"text": "télétravail santé", "source": "query", "count": 2}
    assert http.get("/v1/collections/rh/suggest", params={"q": "xyz"}).json()["data"] == []


def test_http_errors(http: TestClient) -> None:
    for params in [{"q": ""}, {"q": "x" * 201}, {}, {"q": "t", "limit": 0}]:
        assert http.get("/v1/collections/rh/suggest", params=params).status_code == 422, params
    res = http.get("/v1/collections/nope/suggest", params={"q": "tele"})
    assert res.status_code == 404
    assert res.json()["error"]["code"] == "collection_not_found"
    spec = http.get("/openapi.json").json()["paths"]["/v1/collections/{name}/suggest"]["get"]
    assert spec["operationId"] == "suggest" and "accents" in spec["description"]


def test_cli_suggest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with engram.open(data, embedding_model="hash") as db:
        db.create_collection("rh", language="fr")
        db.add(FR, collection="rh")
    runner = CliRunner()
    env = {"ENGRAM_EMBEDDING_MODEL": "hash"}
    res = runner.invoke(cli, ["suggest", "telwtr", "-c", "rh", "--data-dir", str(data)], env=env)
    assert res.exit_code == 0, res.output
    assert "télétravail" in res.output and "[term ×2]" in res.output
    res = runner.invoke(
        cli, ["suggest", "tele", "-c", "rh", "--json", "-n", "2", "--data-dir", str(data)], env=env
    )
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == 2
    res = runner.invoke(cli, ["suggest", "tele", "-c", "nope", "--data-dir", str(data)], env=env)
    assert res.exit_code != 0 and "nope" in res.output
