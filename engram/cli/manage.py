"""``engram collections``, ``engram docs``, ``engram delete``."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from ..search.filters import parse_where_args
from .main import Context, cli


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def collections(obj: Context, as_json: bool) -> None:
    """List collections with their model, language and size."""
    items = obj.db(existing=True).collections()
    if as_json:
        click.echo(json.dumps([asdict(c) for c in items]))
        return
    if not items:
        click.echo("No collections yet: run `engram ingest PATH` first.")
    for c in items:
        click.echo(
            f"{c.name}: {c.document_count} documents, {c.chunk_count} chunks,"
            f" model {c.model_id} ({c.dimension}-d), language {c.language}"
        )


@cli.command()
@click.option(
    "-c", "--collection", default="default", show_default=True, envvar="ENGRAM_COLLECTION"
)
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--offset", default=0, type=int)
@click.option("--where", multiple=True, help="Metadata filter (see `engram search --help`).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def docs(
    obj: Context, collection: str, limit: int, offset: int, where: tuple[str, ...], as_json: bool
) -> None:
    """List the documents of a collection."""
    items = obj.db(existing=True).documents(
        collection, limit=limit, offset=offset, where=parse_where_args(where) if where else None
    )
    if as_json:
        click.echo(json.dumps([asdict(d) for d in items], ensure_ascii=False))
        return
    for d in items:
        click.echo(f"{d.key}  v{d.version}  {d.chunk_count} chunks  {d.title[:60]}")


@cli.command()
@click.argument("keys", nargs=-1)
@click.option(
    "-c", "--collection", default="default", show_default=True, envvar="ENGRAM_COLLECTION"
)
@click.option("--all", "whole", is_flag=True, help="Delete the whole collection.")
@click.pass_obj
def delete(obj: Context, keys: tuple[str, ...], collection: str, whole: bool) -> None:
    """Delete documents (by key) or a whole collection, from every index."""
    db = obj.db(existing=True)
    if whole:
        db.delete_collection(collection)
        click.echo(f"Deleted collection {collection!r}.")
        return
    if not keys:
        raise click.UsageError("give document keys to delete, or --all for the whole collection")
    deleted = db.delete(list(keys), collection=collection)
    missing = len(set(keys)) - deleted
    click.echo(f"Deleted {deleted} document(s)" + (f"; {missing} not found." if missing else "."))
    if missing and not deleted:
        raise SystemExit(1)
