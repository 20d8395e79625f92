"""Options several commands share, declared once: the collections searched and the mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


class _Repeatable(click.Option):
    """A repeatable option whose environment variable is one value, not a list split at
    spaces: ``ENGRAM_COLLECTION="my notes"`` names one collection, as for other commands."""

    def value_from_envvar(self, ctx: click.Context) -> Any:
        value = self.resolve_envvar_value(ctx)
        return None if value is None else (value,)


def collections_option(help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:  # noqa: A002
    """``-c/--collection``, repeatable (several collections as one ranking, or '*'), into the
    parameter ``collections``; default ``default`` or ENGRAM_COLLECTION."""
    return click.option(
        "-c",
        "--collection",
        "collections",
        cls=_Repeatable,
        multiple=True,
        default=["default"],
        show_default=True,
        envvar="ENGRAM_COLLECTION",
        help=help,
    )


mode_option = click.option(
    "--mode",
    type=click.Choice(["hybrid", "keyword", "vector"]),
    default="hybrid",
    show_default=True,
)
