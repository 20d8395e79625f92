"""``engram migrate``: apply pending schema migrations and report them."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from .main import Context, cli


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def migrate(obj: Context, as_json: bool) -> None:
    """Bring the database to the current schema and list its migrations.

    Works on the SQLite file in --data-dir, or on PostgreSQL when ENGRAM_DATABASE_URL is set.
    Every process also migrates when it opens the database; processes starting together
    apply each migration once. A migration file changed after it was applied is refused.
    """
    from ..store import migrate as migrate_database

    report = migrate_database(obj.settings())
    if as_json:
        click.echo(json.dumps(asdict(report)))
        return
    click.echo(f"{report.backend} database {report.location}")
    for version, name in report.recorded:
        label = f"{version:04d}_{name}"
        status = "applied now" if label in report.applied_now else "already applied"
        click.echo(f"  {label}  {status}")
    latest = report.recorded[-1][0] if report.recorded else 0
    if report.applied_now:
        click.echo(f"Applied {len(report.applied_now)} migration(s); schema version {latest}.")
    else:
        click.echo(f"Up to date: schema version {latest}.")
