"""Contract: collections (CollectionStore), on every backend."""

from __future__ import annotations

import pytest

from contract.kit import EMB, keys_of, put
from engram.errors import (
    CollectionNotFound,
    Conflict,
)
from engram.store.contract import Store


def test_collections_crud(store: Store) -> None:
    c = store.create_collection("a", model_id="m", dimension=4, language="fr", settings={"x": 1})
    assert (c.name, c.model_id, c.dimension, c.language, c.settings) == (
        "a",
        "m",
        4,
        "fr",
        {"x": 1},
    )
    with pytest.raises(Conflict):
        store.create_collection("a", model_id="m", dimension=4, language="en", settings={})
    assert [x.name for x in store.list_collections()] == ["a"]
    store.delete_collection("a")
    with pytest.raises(CollectionNotFound):
        store.get_collection("a")


def test_collections_are_scoped_by_tenant(store: Store) -> None:
    a = store.create_collection(
        "kb", model_id=EMB.model_id, dimension=32, language="en", settings={}, tenant="acme"
    )
    b = store.create_collection(
        "kb", model_id=EMB.model_id, dimension=32, language="en", settings={}, tenant="globex"
    )
    assert a.id != b.id and (a.tenant, b.tenant) == ("acme", "globex")
    put(store, a, "secret", "acme launch plans")
    assert [c.name for c in store.list_collections(tenant="acme")] == ["kb"]
    assert store.list_collections(tenant="initech") == []
    with pytest.raises(CollectionNotFound):
        store.get_collection("kb", tenant="initech")
    other = store.get_collection("kb", tenant="globex")
    assert store.keyword_search(other, ["launch"], k=5) == []
    assert store.list_documents(other) == []
    store.delete_collection("kb", tenant="globex")
    acme = store.get_collection("kb", tenant="acme")
    assert keys_of(store, acme, store.keyword_search(acme, ["launch"], k=5)) == ["secret"]
