"""Contract: agent state (StateStore), on every backend."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from engram.errors import VersionConflict
from engram.store.contract import Store


def put(store: Store, ns: str, key: str, value: object, **kw: object) -> int:
    kw.setdefault("expect", None)
    kw.setdefault("expires_at", None)
    kw.setdefault("embedding", None)
    text = json.dumps(value, sort_keys=True)  # as the service writes values
    return store.put_state("t", ns, key, text, **kw).version  # type: ignore[arg-type]


def test_versions_count_every_write_and_compare_and_set_refuses_stale_ones(store: Store) -> None:
    assert put(store, "user/1", "plan", {"step": 1}, expect=0) == 1  # create only
    with pytest.raises(VersionConflict) as raised:
        put(store, "user/1", "plan", {"step": 9}, expect=0)
    assert raised.value.details["version"] == 1
    assert put(store, "user/1", "plan", {"step": 2}, expect=1) == 2
    with pytest.raises(VersionConflict):
        put(store, "user/1", "plan", {"step": 3}, expect=1)  # stale
    with pytest.raises(VersionConflict):
        put(store, "user/1", "other", {"x": 1}, expect=4)  # no such key
    assert put(store, "user/1", "plan", {"step": 4}) == 3  # unconditional
    item = store.get_state("t", "user/1", "plan")
    assert item is not None and item.value == {"step": 4} and item.version == 3
    assert item.namespace == ("user", "1") and item.created_at <= item.updated_at
    assert store.get_state("t", "user/1", "other") is None
    assert store.get_state("another-tenant", "user/1", "plan") is None


def test_delete_with_and_without_a_version(store: Store) -> None:
    put(store, "a", "k", 1)
    put(store, "a", "k", 2)
    with pytest.raises(VersionConflict):
        store.delete_state("t", "a", "k", expect=1)
    assert store.delete_state("t", "a", "k", expect=2) is True
    assert store.delete_state("t", "a", "k") is False
    assert store.get_state("t", "a", "k") is None
    assert put(store, "a", "k", 3, expect=0) == 1  # a deleted key starts again


def test_expired_items_are_absent_and_restart_at_version_one(store: Store) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    put(store, "s", "gone", {"v": 1}, expires_at=past)
    put(store, "s", "kept", {"v": 1}, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert store.get_state("t", "s", "gone") is None
    assert [i.key for i, _ in store.scan_state("t", "s")] == ["kept"]
    assert store.state_namespaces("t", "") == ["s"]
    with pytest.raises(VersionConflict):
        put(store, "s", "gone", {"v": 2}, expect=1)  # expired: not at version 1 any more
    assert put(store, "s", "gone", {"v": 2}, expect=0) == 1
    put(store, "s", "short", 1, expires_at=datetime.now(UTC) + timedelta(milliseconds=50))
    time.sleep(0.1)
    assert store.purge_state() == 1  # "short"; "gone" was rewritten without expiry
    assert sorted(i.key for i, _ in store.scan_state("t", "")) == ["gone", "kept"]


def test_prefixes_select_whole_labels(store: Store) -> None:
    for ns in ("user/42", "user/42/agent/planner", "user/420", "user/4", "users", "user/42/a",
               "user/42-x", "user/42.b"):  # fmt: skip
        put(store, ns, "k", ns)
    under = [(i.namespace, i.key) for i, _ in store.scan_state("t", "user/42")]
    assert under == [(("user", "42"), "k"), (("user", "42", "a"), "k"),
                     (("user", "42", "agent", "planner"), "k")]  # fmt: skip
    assert store.state_namespaces("t", "user") == [
        "user/4", "user/42", "user/42-x", "user/42.b", "user/42/a", "user/42/agent/planner",
        "user/420",
    ]  # fmt: skip
    assert len(store.scan_state("t", "")) == 8
    assert store.scan_state("other", "") == []


def test_values_round_trip_and_vectors_come_back_for_their_model(store: Store) -> None:
    value = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": {}}, "n": -3}
    vec = np.arange(1, 5, dtype=np.float32)
    put(store, "v", "doc", value, embedding=("m1", vec))
    put(store, "v", "plain", "just text")
    (doc, found), (plain, none) = store.scan_state("t", "v", model_id="m1")
    assert doc.value == value and list(doc.value) == ["a", "b", "n"]  # keys sorted
    assert np.array_equal(found, vec) and plain.value == "just text" and none is None
    assert store.scan_state("t", "v", model_id="m2")[0][1] is None  # another model's vector


def test_concurrent_compare_and_set_loses_no_update(store: Store) -> None:
    put(store, "c", "counter", 0)
    writers, increments = 8, 15
    lost: list[int] = []

    def work() -> None:
        done = 0
        while done < increments:
            item = store.get_state("t", "c", "counter")
            assert item is not None
            try:
                put(store, "c", "counter", item.value + 1, expect=item.version)
            except VersionConflict:
                continue
            done += 1
        lost.append(increments - done)

    threads = [threading.Thread(target=work) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.get_state("t", "c", "counter")
    assert final is not None and final.value == writers * increments
    assert final.version == writers * increments + 1 and lost == [0] * writers


def test_refresh_gives_an_item_its_ttl_again(store: Store) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=5)
    put(store, "a", "ttl", 1, expires_at=soon, ttl=3600.0)
    put(store, "a", "forever", 2)
    put(store, "a", "old", 3, expires_at=datetime.now(UTC) - timedelta(seconds=1), ttl=10.0)
    fresh = store.refresh_state("t", [("a", "ttl"), ("a", "forever"), ("a", "old"), ("a", "none")])
    assert set(fresh) == {("a", "ttl")}  # no TTL, expired or missing: nothing to refresh
    assert fresh[("a", "ttl")] > soon + timedelta(seconds=3000)
    item = store.get_state("t", "a", "ttl")
    assert item is not None and item.expires_at is not None
    assert datetime.fromisoformat(item.expires_at) == fresh[("a", "ttl")]
    assert store.refresh_state("other", [("a", "ttl")]) == {}  # another tenant's item
