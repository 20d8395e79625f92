"""``engram keys create|list|revoke``."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from ..keys import SCOPES
from .main import Context, cli


@cli.group()
def keys() -> None:
    """Manage API keys for `engram serve` (stored hashed; shown once at creation)."""


@keys.command("create")
@click.option("--tenant", default="default", show_default=True, help="Tenant the key acts for.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    default=("read",),
    show_default=True,
    help="Scope(s): read, write, admin (repeatable).",
)
@click.option("--name", default="", help="A label to recognise the key by.")
@click.option(
    "--user",
    "user_id",
    help="Bind the key to this user of the tenant: it reaches only the user's conversations,"
    " memories and state (under user/<id>).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def create(
    obj: Context,
    tenant: str,
    scopes: tuple[str, ...],
    name: str,
    user_id: str | None,
    as_json: bool,
) -> None:
    """Create a key and print it once."""
    record, full = obj.db().create_key(tenant=tenant, scopes=scopes, name=name, user_id=user_id)
    if as_json:
        click.echo(json.dumps({**asdict(record), "key": full}))
        return
    click.echo(full)
    user = f", user {record.user_id!r}" if record.user_id else ""
    click.echo(
        f"(key {record.id} for tenant {record.tenant!r}{user}, scopes"
        f" {', '.join(record.scopes)}; store it now: it cannot be shown again)",
        err=True,
    )


@keys.command("list")
@click.option("--tenant", help="Only this tenant's keys.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_keys(obj: Context, tenant: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    items = obj.db().keys(tenant=tenant)
    if as_json:
        click.echo(json.dumps([asdict(k) for k in items]))
        return
    for k in items:
        state = f"revoked {k.revoked_at}" if k.revoked_at else "active"
        user = f"  user {k.user_id}" if k.user_id else ""
        click.echo(f"{k.id}  {k.tenant}  {','.join(k.scopes)}  {state}{user}  {k.name}")


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def revoke(obj: Context, key_id: str) -> None:
    """Revoke a key at once."""
    obj.db().revoke_key(key_id)
    click.echo(f"Revoked {key_id}.")
