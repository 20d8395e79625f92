"""``engram recall``: search a user's past conversations from the shell."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

import click

from .main import Context, cli
from .options import mode_option

if TYPE_CHECKING:
    from ..types import SearchMode


@cli.command("recall")
@click.argument("query")
@click.option("--user", "user_id", required=True, help="Whose conversations to search.")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--conversation", "conversation_id", help="Only this conversation.")
@click.option(
    "--role", type=click.Choice(["system", "user", "assistant", "tool"]), help="Only this role."
)
@click.option("--speaker", help="Only messages of this speaker.")
@click.option("--since", help="Messages from this time on (ISO 8601, e.g. 2026-03-01).")
@click.option("--until", help="Messages before this time (ISO 8601).")
@click.option(
    "--context",
    default=1,
    show_default=True,
    type=click.IntRange(0, 20),
    help="Turns shown before and after each hit.",
)
@mode_option
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@click.pass_obj
def recall(
    obj: Context,
    query: str,
    user_id: str,
    k: int,
    conversation_id: str | None,
    role: str | None,
    speaker: str | None,
    since: str | None,
    until: str | None,
    context: int,
    mode: str,
    tenant: str,
    as_json: bool,
) -> None:
    """Search a user's past conversations: the best turns, with the turns around them."""
    hits = obj.db(existing=True).memory.recall(
        query,
        user_id=user_id,
        k=k,
        conversation_id=conversation_id,
        role=role,
        speaker=speaker,
        since=since,
        until=until,
        context=context,
        mode=cast("SearchMode", mode),
        tenant=tenant,
    )
    if as_json:
        for hit in hits:
            click.echo(json.dumps(hit.to_dict(), ensure_ascii=False))
        return
    if not hits:
        click.echo("Nothing found.")
        return
    for n, hit in enumerate(hits, 1):
        m = hit.message
        click.echo(
            f"{n}. {m.created_at[:16].replace('T', ' ')}  conversation {m.conversation_id}"
            f"  score {hit.score:.3f}"
        )
        for turn in hit.context:
            mark = ">" if turn.id == m.id else " "
            who = turn.speaker or turn.role
            click.echo(f"  {mark} {who}: {turn.content}")
