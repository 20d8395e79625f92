"""Shared fixtures. Contract tests take ``store`` (parametrized over every backend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import engram
from engram.config import Settings
from engram.store.base import Store
from engram.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
DATASETS = REPO.parent / "shared" / "datasets"


@pytest.fixture(params=["sqlite-memory", "sqlite-file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite-memory":
        s = SQLiteStore(":memory:")
    else:
        s = SQLiteStore(tmp_path / "engram.db", index_dir=tmp_path / "vectors")
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.build(
        data_dir=tmp_path / "data", embedding_model="hash", chunk_tokens=64, chunk_overlap=8
    )


@pytest.fixture
def db(settings: Settings) -> Iterator[engram.Engram]:
    with engram.open(settings=settings) as database:
        yield database


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small folder of documents in several formats."""
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "cats.md").write_text(
        "# Cats\n\nCats are small carnivorous mammals that purr and sleep a lot.\n\n"
        + "They were domesticated thousands of years ago in the Near East, where they hunted"
        " rodents in grain stores. Today cats live on every continent except Antarctica, and"
        " house cats spend most of their day resting, grooming and watching birds through"
        " windows. Their whiskers sense small changes in air currents.\n\n"
        "## Feeding\n\nFeed adult cats twice a day with high-protein food.\n"
    )
    (root / "dogs.txt").write_text(
        "Dogs are loyal companions. They need daily walks and training.\n"
    )
    (root / "sub" / "birds.html").write_text(
        "<html><head><title>Birds</title></head><body><h1>Birds</h1>"
        "<p>Parrots can imitate human speech and live for decades.</p></body></html>"
    )
    (root / "sub" / "records.jsonl").write_text(
        '{"_id": "r1", "title": "Quantum computing", "text": "Qubits use superposition and entanglement.", "metadata": {"year": 2021, "field": "physics"}}\n'
        '{"_id": "r2", "title": "Photosynthesis", "text": "Plants convert sunlight into chemical energy.", "metadata": {"year": 2019, "field": "biology"}}\n'
    )
    return root
