"""``engram state put|get|delete|list|search|namespaces``: agent state from the shell."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from ..errors import InvalidInput
from ..search.filters import parse_where_args
from .main import Context, cli

if TYPE_CHECKING:
    from ..state import StateItem


def _show(item: StateItem, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(item.to_dict(), ensure_ascii=False))
        return
    where = "/".join(item.namespace) + "/" + item.key
    score = f"  score {item.score:.3f}" if item.score is not None else ""
    expiry = f"  expires {item.expires_at}" if item.expires_at else ""
    click.echo(f"{where}  v{item.version}{score}{expiry}")
    click.echo("  " + json.dumps(item.value, ensure_ascii=False))


@cli.group()
def state() -> None:
    """Agent state: JSON values under keys in namespaces (paths such as user/42/planner)."""


@state.command("put")
@click.argument("namespace")
@click.argument("key")
@click.argument("value")
@click.option("--ttl", type=float, help="Seconds until the item expires.")
@click.option("--if-version", type=int, help="Only replace this version (0: only create).")
@click.option("--index", "index", multiple=True, help="Field to embed for search (repeatable).")
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def put(
    obj: Context,
    namespace: str,
    key: str,
    value: str,
    ttl: float | None,
    if_version: int | None,
    index: tuple[str, ...],
    tenant: str,
    as_json: bool,
) -> None:
    """Store VALUE (JSON; anything else is stored as a string) under KEY in NAMESPACE."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    item = obj.db().state.put(
        namespace, key, parsed, if_version=if_version, ttl=ttl, index=index or None, tenant=tenant
    )
    _show(item, as_json)


@state.command("get")
@click.argument("namespace")
@click.argument("key")
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def get(obj: Context, namespace: str, key: str, tenant: str, as_json: bool) -> None:
    """Print one item."""
    _show(obj.db(existing=True).state.get(namespace, key, tenant=tenant), as_json)


@state.command("delete")
@click.argument("namespace")
@click.argument("key")
@click.option("--if-version", type=int, help="Only delete this version.")
@click.option("--tenant", default="default", show_default=True)
@click.pass_obj
def delete(obj: Context, namespace: str, key: str, if_version: int | None, tenant: str) -> None:
    """Delete one item."""
    obj.db(existing=True).state.delete(namespace, key, if_version=if_version, tenant=tenant)
    click.echo(f"Deleted {namespace.strip('/')}/{key}.")


@state.command("list")
@click.argument("prefix", default="")
@click.option("--where", "wheres", multiple=True, help="Filter on value fields: status=open.")
@click.option("--query", help="Rank indexed items by similarity to this text.")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--tenant", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_items(
    obj: Context,
    prefix: str,
    wheres: tuple[str, ...],
    query: str | None,
    limit: int,
    tenant: str,
    as_json: bool,
) -> None:
    """Items under PREFIX (a namespace and those below it), or all."""
    found = obj.db(existing=True).state.search(
        prefix,
        query=query,
        filter=parse_where_args(wheres) if wheres else None,
        limit=limit,
        tenant=tenant,
    )
    for item in found:
        _show(item, as_json)


@state.command("namespaces")
@click.argument("prefix", default="")
@click.option("--max-depth", type=int)
@click.option("--tenant", default="default", show_default=True)
@click.pass_obj
def namespaces(obj: Context, prefix: str, max_depth: int | None, tenant: str) -> None:
    """Namespaces holding items under PREFIX."""
    if max_depth is not None and max_depth < 1:
        raise InvalidInput("--max-depth must be at least 1")
    for ns in obj.db(existing=True).state.namespaces(prefix, max_depth=max_depth, tenant=tenant):
        click.echo("/".join(ns))
