"""Contract: API keys (KeyStore), on every backend."""

from __future__ import annotations

from engram.keys import ApiKey
from engram.store.contract import Store


def test_api_keys_are_created_listed_and_revoked(store: Store) -> None:
    a = ApiKey("aaaaaaaaaaaa", "acme", "ci", ("read",), "2024-03-01T10:00:00+00:00")
    b = ApiKey("bbbbbbbbbbbb", "acme", "admin", ("read", "write"), "2024-03-01T11:00:00+00:00")
    g = ApiKey("cccccccccccc", "globex", "", ("admin",), "2024-03-01T09:00:00+00:00")
    for key, secret_hash in ((a, "hash-a"), (b, "hash-b"), (g, "hash-g")):
        store.create_api_key(key, secret_hash)
    assert store.get_api_key("aaaaaaaaaaaa") == (a, "hash-a")
    assert store.get_api_key("dddddddddddd") is None
    assert store.list_api_keys("acme") == [a, b]  # by creation time
    assert [k.id for k in store.list_api_keys()] == [g.id, a.id, b.id]  # every tenant
    assert store.list_api_keys("initech") == []
    assert store.revoke_api_key("bbbbbbbbbbbb") is True
    assert store.revoke_api_key("bbbbbbbbbbbb") is False  # already revoked
    assert store.revoke_api_key("dddddddddddd") is False  # no such key
    found = store.get_api_key("bbbbbbbbbbbb")
    assert found is not None and not found[0].active and found[0].revoked_at is not None
    assert found[0].scopes == ("read", "write") and found[1] == "hash-b"
    assert store.get_api_key("aaaaaaaaaaaa") == (a, "hash-a")  # the others untouched
