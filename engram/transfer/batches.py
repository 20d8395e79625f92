"""Imports that can be undone: each import (``engram import --from-jsonl``, ``--from-chroma``,
an export) is recorded as a batch (engram.store.import_contract) while it writes, and
``engram import --rollback BATCH`` puts back what it changed.

:func:`recording` opens a batch, hands its id to the writes, and closes it ``finished`` (or
``failed``, when the import raises: what it wrote before failing can be rolled back too)
with its counts and the collections it created, which a rollback deletes once empty.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import CollectionNotFound
from ..store.contract import Store
from ..store.import_contract import ImportBatch, RollbackReport

__all__ = ["Recording", "new_batch_id", "recording", "roll_back"]


def new_batch_id() -> str:
    return "imp_" + uuid.uuid4().hex[:20]


@dataclass(slots=True)
class Recording:
    """An import batch being recorded: ``id`` goes to the store's writes (``batch=``)."""

    store: Store
    id: str
    tenant: str
    collections: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    irreversible: str | None = None
    _existed: dict[str, bool] = field(default_factory=dict)

    def collection(self, name: str) -> None:
        """Note that the import writes to collection ``name`` (call before it writes)."""
        if name in self._existed:
            return
        self.collections.append(name)
        self._existed[name] = self._exists(name)

    def _exists(self, name: str) -> bool:
        try:
            self.store.get_collection(name, tenant=self.tenant, counts=False)
        except CollectionNotFound:
            return False
        return True

    def _created(self) -> list[int]:
        created = []
        for name, existed in self._existed.items():
            if existed:
                continue
            with contextlib.suppress(CollectionNotFound):
                created.append(self.store.get_collection(name, tenant=self.tenant, counts=False).id)
        return created

    def close(self, status: str) -> ImportBatch:
        return self.store.finish_import(
            self.id,
            tenant=self.tenant,
            status="finished" if status == "finished" else "failed",
            counts={k: v for k, v in self.counts.items() if v},
            collections=self.collections,
            created=self._created(),
            irreversible=self.irreversible,
        )


@contextlib.contextmanager
def recording(store: Store, *, tenant: str, kind: str, source: str) -> Iterator[Recording]:
    """Record the writes made inside the block as one import batch of ``tenant``."""
    rec = Recording(store, new_batch_id(), tenant)
    store.begin_import(rec.id, tenant=tenant, kind=kind, source=source, collections=())
    try:
        yield rec
    except BaseException:
        with contextlib.suppress(Exception):  # the import's own error is the one to report
            rec.close("failed")
        raise
    rec.close("finished")


def roll_back(store: Store, batch_id: str, *, tenant: str, force: bool = False) -> RollbackReport:
    """Undo import batch ``batch_id`` of ``tenant`` (see Store.rollback_import)."""
    return store.rollback_import(batch_id, tenant=tenant, force=force)
