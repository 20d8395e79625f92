"""``engram export``, ``engram import``, ``engram backup``, ``engram restore``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from .main import Context, cli

if TYPE_CHECKING:
    from ..transfer.report import TransferReport


def _print(report: TransferReport, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    click.echo(report.summary())
    for error in report.extra.get("errors", []):
        click.secho(f"  failed: {error['source']}: {error['reason']}", fg="yellow", err=True)


def _progress(as_json: bool) -> Callable[[str], None] | None:
    return None if as_json else (lambda message: click.echo(f"… {message}", err=True))


def _all_failed(report: TransferReport) -> bool:
    """Records failed and nothing else happened (not even an unchanged record)."""
    others = [n for k, n in report.skipped.items() if k != "failed"]
    return (
        bool(report.skipped.get("failed")) and not any(report.counts.values()) and not any(others)
    )


@cli.command("export")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--tenant", "tenants", multiple=True, help="Only this tenant (repeatable).")
@click.option(
    "-c",
    "--collection",
    "collections",
    multiple=True,
    help="Only this collection (repeatable); conversations, memories and events are then left out.",
)
@click.option("--no-memories", is_flag=True, help="Leave conversations and memories out.")
@click.option("--no-events", is_flag=True, help="Leave analytics events out.")
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def export_command(
    obj: Context,
    path: Path,
    tenants: tuple[str, ...],
    collections: tuple[str, ...],
    no_memories: bool,
    no_events: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Export collections (documents, versions, chunks, vectors), conversations, memories
    and events to PATH: a new folder, or a .tar / .tar.gz file (docs/export-format.md).

    The format is the same for every backend: export from SQLite, import into PostgreSQL.
    API keys are never exported (they are secrets).
    """
    from ..transfer.export import export_data

    report = export_data(
        obj.db().store,
        path,
        tenants=tenants or None,
        collections=collections or None,
        memories=not (collections or no_memories),
        events=not (collections or no_events),
        force=force,
        progress=_progress(as_json),
    )
    _print(report, as_json)


@cli.command("import")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--from-chroma",
    "chroma",
    type=click.Path(path_type=Path, file_okay=False),
    help="Import a Chroma persistent directory instead of an engram export.",
)
@click.option(
    "--from-jsonl",
    "jsonl",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Import one document per line of a JSON Lines file (e.g. from mongoexport).",
)
@click.option(
    "-c",
    "--collection",
    "collections",
    multiple=True,
    help="Export: only this collection (repeatable). Chroma: only this Chroma collection. "
    "JSONL: the target collection (required).",
)
@click.option(
    "--tenant",
    "tenants",
    multiple=True,
    help="Only this tenant (repeatable); "
    "Chroma/JSONL: the tenant to import into (default 'default').",
)
@click.option("--replace", is_flag=True, help="Replace collections that exist (atomically).")
@click.option("--merge", is_flag=True, help="Add to existing collections what they lack.")
@click.option("--no-memories", is_flag=True, help="Skip conversations and memories.")
@click.option("--no-events", is_flag=True, help="Skip analytics events.")
@click.option(
    "--model",
    "chroma_model",
    help="Chroma: the embedding model of the Chroma vectors (kept when it is engram's).",
)
@click.option("--id-field", help="JSONL: record id field (default _id or id).")
@click.option(
    "--text-field", "text_fields", multiple=True, help="JSONL: text field(s) (default text)."
)
@click.option("--title-field", default="title", show_default=True, help="JSONL: title field.")
@click.option(
    "--metadata-fields",
    "metadata_fields",
    multiple=True,
    help="JSONL: fields kept as metadata, comma-separated or repeated (default: all others).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="JSONL: report what would be added, changed, deleted or unchanged.",
)
@click.option(
    "--sync",
    is_flag=True,
    help="JSONL: also delete the collection's documents the file does not have.",
)
@click.option(
    "--batches", "list_batches", is_flag=True, help="List the recorded imports (batches)."
)
@click.option(
    "--rollback",
    "rollback",
    metavar="BATCH",
    help="Undo import BATCH: restore what it updated or deleted, delete what it added.",
)
@click.option(
    "--force", is_flag=True, help="--rollback: even over documents changed since the import."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def import_command(
    obj: Context,
    path: Path | None,
    chroma: Path | None,
    jsonl: Path | None,
    collections: tuple[str, ...],
    tenants: tuple[str, ...],
    replace: bool,
    merge: bool,
    no_memories: bool,
    no_events: bool,
    chroma_model: str | None,
    id_field: str | None,
    text_fields: tuple[str, ...],
    title_field: str,
    metadata_fields: tuple[str, ...],
    dry_run: bool,
    sync: bool,
    list_batches: bool,
    rollback: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Import an engram export (PATH), a Chroma directory (--from-chroma) or a JSON Lines
    file (--from-jsonl).

    An export's collections are imported atomically and never re-embedded; an existing
    collection is refused unless --replace or --merge. Chroma records and JSONL lines go
    through the ingestion pipeline (chunked, embedded unless a vector can be kept).

    Every import is recorded as a batch: --batches lists them, --rollback BATCH undoes one
    (refused if documents it wrote were changed since, unless --force).
    """
    if list_batches or rollback is not None:
        _batches(obj, path, chroma, jsonl, tenants, list_batches, rollback, force, as_json)
        return
    if force:
        raise click.UsageError("--force applies to --rollback")
    sources = [s for s in (path, chroma, jsonl) if s is not None]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of PATH, --from-chroma DIR, --from-jsonl FILE")
    if replace and merge:
        raise click.UsageError("--replace and --merge exclude each other")
    if (dry_run or sync) and jsonl is None:
        raise click.UsageError("--dry-run and --sync apply to --from-jsonl")
    if (chroma or jsonl) and len(tenants) > 1:
        raise click.UsageError("--from-chroma / --from-jsonl import into one --tenant")
    tenant = tenants[0] if tenants else "default"
    progress = _progress(as_json)
    if chroma is not None:
        from ..transfer.chroma import import_chroma

        report = import_chroma(
            obj.db(),
            chroma,
            collections=collections or None,
            model=chroma_model,
            tenant=tenant,
            progress=progress,
        )
    elif jsonl is not None:
        from ..transfer.jsonl import import_jsonl

        if len(collections) != 1:
            raise click.UsageError("--from-jsonl needs one --collection NAME")
        fields = [f.strip() for item in metadata_fields for f in item.split(",") if f.strip()]
        report = import_jsonl(
            obj.db(),
            jsonl,
            collection=collections[0],
            tenant=tenant,
            id_field=id_field,
            text_fields=text_fields,
            title_field=title_field,
            metadata_fields=fields or None,
            dry_run=dry_run,
            sync=sync,
        )
    else:
        from ..transfer.import_ import import_data

        assert path is not None
        report = import_data(
            obj.db().store,
            path,
            tenants=tenants or None,
            collections=collections or None,
            mode="replace" if replace else "merge" if merge else "error",
            memories=not (collections or no_memories),
            events=not (collections or no_events),
            progress=progress,
        )
    _print(report, as_json)
    if _all_failed(report):
        raise SystemExit(1)


def _batches(
    obj: Context,
    path: Path | None,
    chroma: Path | None,
    jsonl: Path | None,
    tenants: tuple[str, ...],
    list_batches: bool,
    rollback: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """``--batches`` / ``--rollback BATCH``: they take only --tenant, --force and --json."""
    if list_batches and rollback is not None:
        raise click.UsageError("--batches and --rollback exclude each other")
    if any(s is not None for s in (path, chroma, jsonl)):
        raise click.UsageError("--batches / --rollback take no PATH, --from-chroma or --from-jsonl")
    if len(tenants) > 1:
        raise click.UsageError("--batches / --rollback work on one --tenant")
    tenant = tenants[0] if tenants else "default"
    db = obj.db()
    if rollback is None:
        found = db.import_batches(tenant=tenant)
        if as_json:
            data = [b.to_dict() for b in found]
            click.echo(json.dumps({"data": data, "count": len(data)}, ensure_ascii=False))
        for b in [] if as_json else found:
            counts = ", ".join(f"{n} {k}" for k, n in b.counts.items()) or "nothing"
            click.echo(
                f"{b.id}  {b.started_at}  {b.status:<11}  {b.kind:<6}"
                f"  {','.join(b.collections) or '-'}  {counts}  {b.source}"
            )
        if not found and not as_json:
            click.echo("no imports recorded", err=True)
        return
    done = db.rollback_import(rollback, tenant=tenant, force=force)
    if as_json:
        click.echo(json.dumps(done.to_dict(), ensure_ascii=False))
        return
    counts = ", ".join(f"{n} {k}" for k, n in done.counts.items()) or "nothing to undo"
    click.echo(f"rolled back {done.batch.id}: {counts}")
    if done.conflicts:
        shown = ", ".join(done.conflicts[:10])
        click.secho(f"  overwrote later changes to: {shown}", fg="yellow", err=True)


@cli.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--method",
    type=click.Choice(["auto", "native", "logical"]),
    default="auto",
    show_default=True,
    help="native: SQLite backup API / pg_dump; logical: the portable export; auto: native, "
    "else logical (PostgreSQL without a recent enough pg_dump).",
)
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help="Rotate: PATH is a folder of backups; make a new one in it (engram-<UTC time>) and "
    "remove all but the N newest.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def backup_command(
    obj: Context, path: Path, method: str, force: bool, keep: int | None, as_json: bool
) -> None:
    """Back the whole database up into the new folder PATH (consistent while engram runs).

    SQLite: the online backup API (index files are rebuilt after a restore). PostgreSQL:
    pg_dump --format=custom, with a pg_dump at least as new as the server. With --keep N,
    PATH holds rotated backups (for a timer: see docs/operations.md).
    """
    from ..transfer.backups import Method, backup, backup_rotating

    if keep is not None:
        if force:
            raise click.UsageError("--force does not apply with --keep (each backup is new)")
        report = backup_rotating(obj.settings(), path, keep=keep, method=cast(Method, method))
    else:
        report = backup(obj.settings(), path, method=cast(Method, method), force=force)
    _print(report, as_json)


@cli.command("restore")
@click.argument("path", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True, help="Replace a database that holds data.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def restore_command(obj: Context, path: Path, force: bool, as_json: bool) -> None:
    """Restore a backup made by `engram backup` into the configured database.

    Refuses a database that holds data unless --force. Stop `engram serve` and workers
    first: they keep caches of the database being replaced.
    """
    from ..transfer.backups import restore

    _print(restore(obj.settings(), path, force=force), as_json)
