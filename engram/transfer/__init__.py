"""Moving data in and out of engram: the portable export format, imports from other stores
(Chroma, JSON Lines), and backups.

* :func:`export_data` / :func:`import_data`: every collection (documents, versions, chunks,
  vectors), conversation, memory and event of a store, in a versioned format that any backend
  reads back identically (docs/export-format.md).
* :func:`import_chroma`: a Chroma persistent directory.
* :func:`import_jsonl`: JSON Lines from other stores (``mongoexport`` included), with a dry run.
* :func:`backup` / :func:`restore`: a consistent copy of the whole database.
"""

from .backups import backup, restore
from .chroma import import_chroma
from .export import export_data
from .import_ import import_data
from .jsonl import import_jsonl
from .report import TransferReport

__all__ = [
    "TransferReport",
    "backup",
    "export_data",
    "import_chroma",
    "import_data",
    "import_jsonl",
    "restore",
]
