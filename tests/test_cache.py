"""Query-embedding and search-result caches: hits, invalidation on change, Redis backend."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import engram
from engram.cache import LRUCache, RedisCache


def test_lru_evicts_oldest() -> None:
    cache = LRUCache("t", 2)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1
    cache.set("c", 3)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert (cache.hits, cache.misses) == (3, 1)


def _search_twice_then_change(db: engram.Engram) -> None:
    db.add([{"id": "a", "text": "alpha particles and decay"}])
    first = db.search("alpha decay")
    again = db.search("alpha decay")
    assert not first.cached and again.cached
    assert [r.chunk_id for r in again.results] == [r.chunk_id for r in first.results]
    db.add([{"id": "b", "text": "alpha decay in heavy nuclei"}])  # the collection changed
    fresh = db.search("alpha decay")
    assert not fresh.cached and {r.document_key for r in fresh.results} == {"a", "b"}
    db.delete("b")
    assert {r.document_key for r in db.search("alpha decay").results} == {"a"}


def test_results_are_cached_until_the_collection_changes(tmp_path: Path) -> None:
    with engram.open(tmp_path, embedding_model="hash") as db:
        _search_twice_then_change(db)
        assert db.searcher.embedding_cache.hits >= 1


def _redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
def test_redis_backend_is_shared_between_processes(tmp_path: Path) -> None:
    url = "redis://127.0.0.1:6379/15"
    RedisCache("search", url, 60)._redis.flushdb()
    with engram.open(tmp_path, embedding_model="hash", redis_url=url) as db:
        _search_twice_then_change(db)
        db.search("alpha decay")
    # A second handle (another process, in production) sees the first one's entries.
    with engram.open(tmp_path, embedding_model="hash", redis_url=url) as other:
        assert other.search("alpha decay").cached


def test_unreachable_redis_is_a_miss_not_a_failure(tmp_path: Path) -> None:
    with engram.open(tmp_path, embedding_model="hash", redis_url="redis://127.0.0.1:1/0") as db:
        db.add([{"id": "a", "text": "alpha"}])
        assert db.search("alpha").results and not db.search("alpha").cached
