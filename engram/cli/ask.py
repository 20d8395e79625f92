"""``engram ask``: an answer with citations, from the shell."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import click

from ..search.filters import parse_where_args
from .main import Context, cli
from .options import collections_option, mode_option

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..answers import AnswerEvent
    from ..types import SearchMode


ANSWERED_FROM = "The collection to answer from; repeat it for several, or '*' for all of them."


@cli.command("ask")
@click.argument("question")
@collections_option(ANSWERED_FROM)
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 50),
    help="Passages to answer from (default: 8 of 256-token chunks, or as much text in smaller"
    " ones).",
)
@mode_option
@click.option("--where", multiple=True, help="Metadata filter, as for `engram search`.")
@click.option("--rerank", is_flag=True, help="Rescore the passages with the cross-encoder.")
@click.option("--user", "user_id", help="Also draw on this user's conversations and memories.")
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the answer and citations as JSON.")
@click.pass_obj
def ask(
    obj: Context,
    question: str,
    collections: tuple[str, ...],
    k: int | None,
    mode: str,
    where: tuple[str, ...],
    rerank: bool,
    user_id: str | None,
    tenant: str,
    as_json: bool,
) -> None:
    """Answer a question from a collection, with citations.

    The ENGRAM_LLM model writes it (streamed as it writes; a list of models falls back in
    order), or, with no model set, the best passages are quoted. --user also draws on that
    user's past conversations and memories."""
    several = len(collections) > 1 or "*" in collections
    if mode != "keyword":
        obj.prefetch_model(None if several else collections[0])
    options: dict[str, Any] = {
        "collection": list(collections) if several else collections[0],
        "k": k,
        "mode": cast("SearchMode", mode),
        "where": parse_where_args(where) if where else None,
        "rerank": rerank,
        "user_id": user_id,
        "tenant": tenant,
    }
    db = obj.db(existing=True)
    if as_json:
        click.echo(json.dumps(db.ask(question, **options).to_dict(), ensure_ascii=False))
        return
    if not _show(db.ask_stream(question, **options), several):
        raise SystemExit(1)


@cli.command("chat")
@collections_option(ANSWERED_FROM)
@click.option(
    "--user",
    "user_id",
    default="cli",
    show_default=True,
    help="Whose conversation it is (their memories and past conversations are drawn on).",
)
@click.option("--conversation", "conversation_id", help="Continue this conversation.")
@mode_option
@click.option("--tenant", default="default", show_default=True)
@click.pass_obj
def chat(
    obj: Context,
    collections: tuple[str, ...],
    user_id: str,
    conversation_id: str | None,
    mode: str,
    tenant: str,
) -> None:
    """Chat with a collection: questions read line by line, answers with citations.

    Each question and answer is kept in a conversation of --user (printed at the start;
    --conversation continues one), so a follow-up ("and for part-time staff?") is understood
    in context. An empty line or Ctrl-D ends it."""
    several = len(collections) > 1 or "*" in collections
    if mode != "keyword":
        obj.prefetch_model(None if several else collections[0])
    db = obj.db(existing=True)
    if conversation_id is None:
        conversation_id = db.memory.create_conversation(user_id, tenant=tenant).id
    else:
        db.memory.conversation(conversation_id, tenant=tenant)  # or ConversationNotFound
    click.secho(f"conversation {conversation_id}", dim=True, err=True)
    options: dict[str, Any] = {
        "collection": list(collections) if several else collections[0],
        "conversation_id": conversation_id,
        "mode": cast("SearchMode", mode),
        "tenant": tenant,
    }
    while True:
        try:
            question = click.prompt("", prompt_suffix="> ", default="", show_default=False)
        except (EOFError, click.Abort):
            break
        if not question.strip():
            break
        _show(db.ask_stream(question, **options), several)
        click.echo()


def _show(events: Iterable[AnswerEvent], several: bool) -> bool:
    """Print a streamed answer and then its sources; False when it ended in an error."""
    ok = True
    for event in events:
        if event.type == "token":
            click.echo(event.data["text"], nl=False)
        elif event.type == "citations":
            click.echo()
            _sources(event.data["citations"], several)
        elif event.type == "error":
            click.echo()
            hint = f" ({event.data['hint']})" if event.data.get("hint") else ""
            click.secho(f"Error: {event.data['message']}{hint}", fg="red", err=True)
            ok = False
    return ok


def _sources(citations: list[dict[str, Any]], several: bool) -> None:
    """The cited passages, one line each (``Citation.to_dict`` records), naming their
    collection when ``several`` were searched."""
    if not citations:
        return
    click.echo()
    click.secho("Sources", bold=True)
    for c in citations:
        page = f" p.{c['page']}" if c.get("page") else ""
        where_in = f"{c['collection']}: " if several and c.get("collection") else ""
        if c.get("kind") == "memory":
            source = f"memory {c['document']}"
        elif c.get("kind") == "conversation":
            source = f"conversation {c['document']}, message {c.get('message_id')}"
        else:
            source = f"{where_in}{c['document']} v{c['version']}{page} chars {c['span'][0]}-{c['span'][1]}"
        title = f"{c['title']} — " if c.get("title") else ""
        click.echo(f"[{c['n']}] {title}{source}")
