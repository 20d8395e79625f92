"""Numbered, hash-checked SQL migrations: each backend package keeps its own in a
``migrations`` folder (``engram/store/sqlite/migrations``, ``engram/store/postgres/migrations``).

Files are named ``NNNN_name.sql``. Each applied migration is recorded with the SHA-256 of its
file; if a file that was applied changes afterwards, opening the database fails loudly instead
of silently running against a schema that differs from the code.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from ..errors import MigrationError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(dialect: str) -> list[Migration]:
    """All migrations of ``dialect`` in version order."""
    folder = resources.files(f"engram.store.{dialect}") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"{dialect} migrations are not numbered 1..n: {versions}")
    return found


def check_applied(applied: dict[int, str], migrations: list[Migration]) -> list[Migration]:
    """Verify recorded hashes and return the migrations still to apply."""
    known = {m.version: m for m in migrations}
    for version, sha in applied.items():
        if version not in known:
            raise MigrationError(
                f"the database has migration {version}, which this engram version does not know",
                hint="upgrade engram, or open the data directory with the version that wrote it",
            )
        if known[version].sha256 != sha:
            raise MigrationError(
                f"migration {version} ({known[version].name}) was changed after it was applied",
                hint="migrations are immutable: add a new numbered migration instead",
            )
    return [m for m in migrations if m.version not in applied]
