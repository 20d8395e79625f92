"""Interface text in English and French, chosen from the browser's language.

Messages live in ``locales/<lang>/<area>.json`` (one file per page area, so areas change
independently); a message is named ``<area>.<key>``. A message missing in French falls back
to English, and a missing English message shows its name, which the tests look for.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("en", "fr")
DEFAULT = "en"
LANG_COOKIE = "engram_lang"
_ROOT = Path(__file__).with_name("locales")


@cache
def catalog(lang: str) -> dict[str, str]:
    """Every message of ``lang``, by ``area.key``."""
    messages: dict[str, str] = {}
    for path in sorted((_ROOT / lang).glob("*.json")):
        area = path.stem
        for key, text in json.loads(path.read_text(encoding="utf-8")).items():
            messages[f"{area}.{key}"] = text
    return messages


def choose(accept_language: str | None, chosen: str | None = None) -> str:
    """The interface language: the one the person chose (cookie), else the first of the
    browser's languages we have, by quality ("fr-CH, fr;q=0.9, en;q=0.8" → fr)."""
    if chosen in LANGUAGES:
        return str(chosen)
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, i, primary))
    return min(ranked)[2] if ranked else DEFAULT


class Translator:
    """``t("search.title")``, ``t("jobs.files", n=3)``: the message in this language,
    formatted with ``str.format`` keywords."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._messages = catalog(lang)
        self._fallback = catalog(DEFAULT)

    def __call__(self, name: str, /, **values: Any) -> str:
        text = self._messages.get(name) or self._fallback.get(name) or name
        return text.format(**values) if values else text
