"""Finding text that is not valid Unicode: lone UTF-16 surrogates.

JSON can spell them (``"\\ud800"``) and Python's ``json`` decodes them into ``str``, but no
UTF-8 encoder accepts them: left in, they fail much later (hashing, storing, answering)
far from the input that carried them. Every boundary that takes JSON checks with
:func:`lone_surrogate` and refuses the value, naming where it is.
"""

from __future__ import annotations

import os
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


def path_text(path: object) -> str:
    """A file path as text that any UTF-8 encoder takes. Under an ASCII locale
    (``LC_ALL=POSIX`` without UTF-8 mode) Python hands over the bytes of an accented name as
    lone surrogates ("caf\\udcc3\\udca9.txt"): they are decoded as the UTF-8 they almost
    always are, and anything else becomes U+FFFD. Open files by their original path; store
    and print this."""
    text = str(path)
    if not _SURROGATE.search(text):
        return text
    return os.fsencode(text).decode("utf-8", errors="replace")


def utf8_argv(argv: list[str]) -> list[str]:
    """Command-line arguments decoded as UTF-8 where the locale could not (see
    :func:`path_text`)."""
    return [path_text(a) for a in argv]
