"""Package attributes imported on first use (PEP 562), shared by the packages whose public
names would otherwise pull heavy modules in at import: ``engram`` itself (so that
``engram --help`` loads neither pydantic nor numpy) and ``engram.memory``, ``engram.state``
and ``engram.jobs`` (whose record types the store imports, without their services)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def exports(
    package: str, sources: Mapping[str, str], namespace: dict[str, Any], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__``: ``sources`` maps each public name to the
    submodule (relative to ``package``) that defines it; a name once imported is kept in
    ``namespace`` (the module's globals), so the next access is a plain attribute lookup."""

    def __getattr__(name: str) -> Any:  # noqa: N807 - the module hook's own name
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(source, package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
