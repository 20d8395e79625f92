"""Agent state: JSON values under keys in namespaces, versioned for compare-and-set, with
optional expiry and semantic search (see :mod:`engram.state.service`)."""

from .service import StateNotFound, StateService
from .types import Namespace, StateItem, VersionConflict

__all__ = ["Namespace", "StateItem", "StateNotFound", "StateService", "VersionConflict"]
