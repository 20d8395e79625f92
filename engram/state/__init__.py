"""Agent state: JSON values under keys in namespaces, versioned for compare-and-set, with
optional expiry and semantic search (see :mod:`engram.state.service`)."""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .service import StateNotFound, StateService
    from .types import Namespace, StateItem, VersionConflict

__all__ = ["Namespace", "StateItem", "StateNotFound", "StateService", "VersionConflict"]

# Imported on first use: the store imports the record types (engram.state.types), and must
# not pull the service in with them (a one-shot search never runs it).
_SOURCES = {
    "StateNotFound": ".service",
    "StateService": ".service",
    "Namespace": ".types",
    "StateItem": ".types",
    "VersionConflict": ".types",
}


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_SOURCES[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
