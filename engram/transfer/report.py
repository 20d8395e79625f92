"""What a transfer command did: counts per kind, bytes, seconds, and notes worth reading."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# The order kinds are printed in.
KINDS = (
    "collections",
    "documents",
    "chunks",
    "embeddings",
    "conversations",
    "messages",
    "memories",
    "memory_history",
    "events",
)


@dataclass(slots=True)
class TransferReport:
    """``counts``: records written (export: to files; import: to the store). ``skipped``:
    records left out, by reason (e.g. ``"documents (already present)"``)."""

    action: str
    path: str
    counts: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    bytes: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "path": self.path,
            "counts": {k: self.counts[k] for k in _ordered(self.counts)},
            "skipped": dict(sorted(self.skipped.items())),
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
            **self.extra,
        }

    def summary(self) -> str:
        """One line, then one line per note."""
        parts = [f"{self.counts[k]} {k.replace('_', ' ')}" for k in _ordered(self.counts)]
        line = f"{self.action}: " + (", ".join(parts) or "nothing")
        if self.skipped:
            line += "; skipped " + ", ".join(f"{n} {k}" for k, n in sorted(self.skipped.items()))
        line += f" — {_size(self.bytes)}, {self.seconds:.1f}s"
        notes = list(self.notes)
        if self.extra.get("batch"):
            batch = self.extra["batch"]
            notes.append(f"batch {batch}: undo with `engram import --rollback {batch}`")
        return "\n".join([line, *(f"  note: {n}" for n in notes)])


def _ordered(counts: Counter[str]) -> list[str]:
    known = [k for k in KINDS if counts.get(k)]
    return known + sorted(k for k in counts if k not in KINDS and counts[k])


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover
