"""Agent state: JSON values under keys in namespaces, versioned for compare-and-set, with
optional expiry and semantic search (see :mod:`engram.state.service`)."""

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from ..errors import StateNotFound
    from .service import StateService
    from .types import Namespace, StateItem, VersionConflict

__all__ = ["Namespace", "StateItem", "StateNotFound", "StateService", "VersionConflict"]

# Imported on first use: the store imports the record types (engram.state.types), and must
# not pull the service in with them (a one-shot search never runs it).
_SOURCES = {
    "StateNotFound": "..errors",
    "StateService": ".service",
    "Namespace": ".types",
    "StateItem": ".types",
    "VersionConflict": ".types",
}


__getattr__, __dir__ = exports(__name__, _SOURCES, globals(), __all__)
