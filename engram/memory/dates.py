"""Dates as people write them, in the collection's language: a recalled turn is indexed
and quoted with its session's date spelled out ("Monday 2 March 2026"), so that "in March" or
"last Monday" find it."""

from __future__ import annotations

from datetime import datetime

_MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "fr": [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
}
_DAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "fr": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
}


def spoken_date(iso: str, language: str) -> str:
    """A date as people write it (``Monday 5 January 2026``), so that "in January" or
    "on Monday" match it; English unless the collection is French."""
    when = datetime.fromisoformat(iso)
    lang = language if language in _MONTHS else "en"
    return f"{_DAYS[lang][when.weekday()]} {when.day} {_MONTHS[lang][when.month - 1]} {when.year}"
