"""Fixtures of the store contract tests (``store``, every backend, is in tests/conftest.py)."""

from __future__ import annotations

import pytest

from contract.kit import EMB
from engram.store.contract import Store
from engram.types import Collection


@pytest.fixture
def coll(store: Store) -> Collection:
    return store.create_collection(
        "c", model_id=EMB.model_id, dimension=32, language="en", settings={}
    )
