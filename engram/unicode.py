"""Finding text that is not valid Unicode: lone UTF-16 surrogates.

JSON can spell them (``"\\ud800"``) and Python's ``json`` decodes them into ``str``, but no
UTF-8 encoder accepts them: left in, they fail much later (hashing, storing, answering)
far from the input that carried them. Every boundary that takes JSON checks with
:func:`lone_surrogate` and refuses the value, naming where it is.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any, path: str = "") -> str | None:
    """Where the first lone surrogate in ``value`` (a str, or lists/dicts of them, keys
    included) is, as a dotted path ("" for ``value`` itself), or None when there is none."""
    if isinstance(value, str):
        return path if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _SURROGATE.search(key):
                return where
            found = lone_surrogate(item, where)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = lone_surrogate(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def describe(path: str) -> str:
    """The message for a lone surrogate found at ``path``."""
    where = f"{path}: " if path else ""
    return (
        f"{where}text is not valid Unicode (a lone surrogate such as \\ud800, which UTF-8"
        " cannot encode)"
    )
