"""``engram versions``: list, show, compare, restore and purge the versions of documents."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from .main import Context, cli

_COLLECTION = click.option(
    "-c", "--collection", default="default", show_default=True, envvar="ENGRAM_COLLECTION"
)


@cli.group()
def versions() -> None:
    """Read, compare, restore and purge the versions documents keep."""


@versions.command("list")
@click.argument("key")
@_COLLECTION
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_versions(obj: Context, key: str, collection: str, as_json: bool) -> None:
    """List the versions document KEY keeps, oldest first."""
    items = obj.db(existing=True).versions(key, collection)
    if as_json:
        click.echo(json.dumps([asdict(v) for v in items]))
        return
    for v in items:
        notes = [] if v.kept else ["text not kept"]
        if v.restored_from is not None:
            notes.append(f"restores v{v.restored_from}")
        extra = f"  ({', '.join(notes)})" if notes else ""
        click.echo(f"v{v.version}  {v.created_at}  {v.chunk_count} chunks{extra}")


@versions.command()
@click.argument("key")
@click.option("-v", "--version", "version", type=int, help="Version number (default: current).")
@_COLLECTION
@click.option("--json", "as_json", is_flag=True, help="Text, metadata and chunks as JSON.")
@click.pass_obj
def show(obj: Context, key: str, version: int | None, collection: str, as_json: bool) -> None:
    """Print the text of document KEY at a version (default: the current one)."""
    content = obj.db(existing=True).document_version(key, version, collection)
    if as_json:
        click.echo(json.dumps(content.to_dict(), ensure_ascii=False))
        return
    click.echo(content.text)


@versions.command()
@click.argument("key")
@click.option("--from", "from_version", type=int, help="Older version (default: previous).")
@click.option("--to", "to_version", type=int, help="Newer version (default: current).")
@_COLLECTION
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def diff(
    obj: Context,
    key: str,
    from_version: int | None,
    to_version: int | None,
    collection: str,
    as_json: bool,
) -> None:
    """Show how document KEY changed between two versions: a unified diff of the text, then
    the title and metadata fields that differ."""
    found = obj.db(existing=True).diff_versions(key, from_version, to_version, collection)
    if as_json:
        click.echo(json.dumps(found.to_dict(), ensure_ascii=False))
        return
    if found.identical:
        click.echo(f"v{found.from_version} and v{found.to_version} have the same content.")
        return
    click.echo(found.text, nl=False)
    if found.title:
        click.echo(f"title: {found.title[0]!r} -> {found.title[1]!r}")
    for m in found.metadata:
        old, new = json.dumps(m.old, ensure_ascii=False), json.dumps(m.new, ensure_ascii=False)
        value = {"added": f"+ {new}", "removed": f"- {old}", "changed": f"{old} -> {new}"}
        click.echo(f"metadata {m.field}: {value[m.change]}")


@versions.command()
@click.argument("key")
@click.argument("version", type=int)
@_COLLECTION
@click.pass_obj
def restore(obj: Context, key: str, version: int, collection: str) -> None:
    """Make VERSION of document KEY current again (written as a new version)."""
    info = obj.db(existing=True).restore_version(key, version, collection)
    if info.version == version:
        click.echo(f"{key}: v{version} is already the current version.")
        return
    click.echo(f"{key}: restored v{version} as v{info.version}.")


@versions.command()
@click.argument("keys", nargs=-1)
@_COLLECTION
@click.option(
    "--keep",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Versions of each document to keep, the current one included.",
)
@click.pass_obj
def purge(obj: Context, keys: tuple[str, ...], collection: str, keep: int) -> None:
    """Drop old versions of documents (KEYS, or every document of the collection), keeping
    the newest --keep of each."""
    dropped = obj.db(existing=True).purge_versions(
        collection, keep=keep, keys=list(keys) if keys else None
    )
    click.echo(f"Dropped {dropped} version(s).")
