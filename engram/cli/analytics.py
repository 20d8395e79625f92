"""``engram stats`` and ``engram events kinds|export|purge``: analytics from the shell."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import InvalidInput
from .main import Context, cli

_TENANT = click.option(
    "--tenant", default="default", show_default=True, envvar="ENGRAM_TENANT", help="Tenant."
)


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


@cli.command()
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(1, 366),
    help="Window: the last N days.",
)
@_TENANT
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@click.pass_obj
def stats(obj: Context, days: int, tenant: str, as_json: bool) -> None:
    """Usage statistics of a tenant: searches, latency, zero results, top queries, active
    users, day-N retention, cohorts by first-seen week, per collection and per user."""
    found = obj.db(existing=True).analytics.stats(tenant=tenant, days=days)
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    _print_stats(found)


def _print_stats(found: dict[str, Any]) -> None:
    echo = click.echo
    echo(f"{found['since'][:10]} .. {found['until'][:10]} ({found['days']} days)")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(found["counts"].items())) or "none"
    echo(f"events: {counts}")
    latency = found["search_latency_ms"]
    p50, p95 = latency["p50"], latency["p95"]
    echo(
        f"searches: {sum(d['count'] for d in found['queries_per_day'])}, zero results"
        f" {_rate(found['zero_result_rate'])}, latency p50 {p50 if p50 is not None else '-'} ms"
        f" p95 {p95 if p95 is not None else '-'} ms"
    )
    echo(f"active users: {found['active_users']['total']}")
    for item in found["retention"]:
        echo(
            f"  day-{item['day']} retention: {_rate(item['rate'])}"
            f" ({item['retained']}/{item['eligible']})"
        )
    if found["cohorts"]:
        echo("cohorts (first-seen week: users, then active per week):")
        for c in found["cohorts"]:
            echo(f"  {c['week']}  {c['users']:>5}  " + " ".join(str(n) for n in c["active"]))
    if found["top_queries"]:
        echo("top queries:")
        for q in found["top_queries"]:
            echo(f"  {q['count']:>6}  {q['query']}")
    if found["by_collection"]:
        echo("collections (events, searches, zero results, chats, users):")
        for c in found["by_collection"]:
            echo(
                f"  {c['collection']}  {c['events']}  {c['searches']}"
                f"  {_rate(c['zero_result_rate'])}  {c['chats']}  {c['users']}"
            )
    if found["by_user"]:
        echo("users (events, searches, chats, last seen):")
        for u in found["by_user"]:
            echo(
                f"  {u['user_id']}  {u['events']}  {u['searches']}  {u['chats']}  {u['last_seen']}"
            )


@cli.group()
def events() -> None:
    """Analytics events: custom kinds, export, retention."""


@events.group()
def kinds() -> None:
    """Custom event kinds and their JSON schemas."""


@kinds.command("add")
@click.argument("name")
@click.argument("schema")
@_TENANT
@click.pass_obj
def add_kind(obj: Context, name: str, schema: str, tenant: str) -> None:
    """Register event kind NAME whose properties must match SCHEMA (JSON, or @FILE)."""
    text = Path(schema[1:]).read_text(encoding="utf-8") if schema.startswith("@") else schema
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(
            f"the schema is not JSON: {exc}", hint="pass a JSON object, or @path/to/schema.json"
        ) from exc
    obj.db().analytics.register_kind(name, parsed, tenant=tenant)
    click.echo(f"registered event kind {name!r} for tenant {tenant!r}")


@kinds.command("list")
@_TENANT
@click.pass_obj
def list_kinds(obj: Context, tenant: str) -> None:
    """List the tenant's custom kinds with their schemas (JSON Lines)."""
    for name, schema in obj.db(existing=True).analytics.event_kinds(tenant=tenant).items():
        click.echo(json.dumps({"name": name, "schema": schema}, ensure_ascii=False))


@kinds.command("remove")
@click.argument("name")
@_TENANT
@click.pass_obj
def remove_kind(obj: Context, name: str, tenant: str) -> None:
    """Unregister kind NAME (its recorded events stay)."""
    obj.db(existing=True).analytics.remove_kind(name, tenant=tenant)
    click.echo(f"removed event kind {name!r}")


@events.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option("--since", help="From this ISO 8601 time (included).")
@click.option("--until", help="Up to this ISO 8601 time (excluded).")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="File (default stdout).")
@_TENANT
@click.pass_obj
def export(
    obj: Context,
    fmt: str,
    since: str | None,
    until: str | None,
    output: str | None,
    tenant: str,
) -> None:
    """Export a tenant's events, oldest first, as JSON Lines or CSV."""
    lines = obj.db(existing=True).analytics.export(
        tenant=tenant, format=fmt, since=since, until=until
    )
    if output is None:
        for line in lines:
            sys.stdout.write(line)
        sys.stdout.flush()
        return
    with open(output, "w", encoding="utf-8", newline="") as f:
        f.writelines(lines)


@events.command("purge")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(min=1),
    help="Days (default: the analytics_retention_days setting).",
)
@click.pass_obj
def purge(obj: Context, days: int | None) -> None:
    """Delete every tenant's events older than the retention now."""
    gone = obj.db(existing=True).analytics.purge(older_than_days=days)
    click.echo(f"deleted {gone} event(s)")
