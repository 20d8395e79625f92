"""``engram ingest``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .main import Context, cli


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "-c", "--collection", default="default", show_default=True, envvar="ENGRAM_COLLECTION"
)
@click.option("--include", multiple=True, help="Glob of files to take from folders (repeatable).")
@click.option("--exclude", multiple=True, help="Glob of files to skip (repeatable).")
@click.option(
    "--sync", is_flag=True, help="Mirror the given folders: delete documents no longer in them."
)
@click.option(
    "--format", "stdin_format", default="txt", show_default=True, help="Format of stdin ('-')."
)
@click.option(
    "--key",
    "stdin_key",
    help="Document key of stdin ('-'); default: stdin- and the start of its content's SHA-256"
    " (the same text piped again is unchanged, another text is another document).",
)
@click.option("--id-field", help="Record id field for JSON/JSONL/CSV (default _id or id).")
@click.option("--title-field", default="title", show_default=True)
@click.option(
    "--text-field", "text_fields", multiple=True, help="Record text field(s) (default text)."
)
@click.option(
    "--metadata-field",
    "metadata_fields",
    multiple=True,
    help="Record field(s) kept as metadata (default: every other field).",
)
@click.option(
    "--language",
    type=click.Choice(["auto", "en", "fr", "none"]),
    help="Keyword language of a new collection.",
)
@click.option(
    "--reparse",
    is_flag=True,
    help="Read and parse every file, even one whose size and modification time are unchanged"
    " (unchanged documents are still not embedded again).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "-v", "--verbose", is_flag=True, help="List the files of folders that were skipped, and why."
)
@click.pass_obj
def ingest(
    obj: Context,
    paths: tuple[str, ...],
    collection: str,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    sync: bool,
    stdin_format: str,
    stdin_key: str | None,
    id_field: str | None,
    title_field: str,
    text_fields: tuple[str, ...],
    metadata_fields: tuple[str, ...],
    language: str | None,
    reparse: bool,
    as_json: bool,
    verbose: bool,
) -> None:
    """Ingest files, folders (recursively) or '-' (stdin) into a collection.

    Unchanged documents are skipped, changed ones become new versions, and only new chunk
    texts are embedded. A file whose size and modification time are those of its last
    ingest (with the same settings) is not even read; one whose bytes are, is not parsed.
    """
    options_kw: dict[str, object] = {"title_field": title_field}
    if id_field:
        options_kw["id_field"] = id_field
    if text_fields:
        options_kw["text_fields"] = text_fields
    if metadata_fields:
        options_kw["metadata_fields"] = metadata_fields
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..ingest.loaders import LoaderOptions

    options = LoaderOptions(**options_kw)  # type: ignore[arg-type]
    if stdin_key is not None and "-" not in paths:
        raise click.UsageError("--key names the document read from stdin: pass '-' too")
    db = obj.db()
    console = Console(stderr=True)
    # Count the files first, so the bar has a total, a percentage and an ETA.
    total = _count_files(paths, include, exclude)
    started = time.perf_counter()
    lines = _ProgressLines(total) if not as_json and not console.is_terminal else None
    with Progress(
        TextColumn("[bold]ingest[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%" if total else ""),
        TextColumn(
            "{task.fields[docs]} docs ({task.fields[dps]}) · {task.fields[chunks]} chunks"
            " ({task.fields[cps]})"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        task = bar.add_task("ingest", total=total, docs=0, chunks=0, dps="…", cps="…")

        def progress(docs: int, chunks: int) -> None:
            elapsed = max(time.perf_counter() - started, 1e-6)
            bar.update(
                task,
                completed=min(docs, total) if total else None,
                docs=docs,
                chunks=chunks,
                dps=_rate(docs, elapsed),
                cps=_rate(chunks, elapsed),
            )
            if lines is not None:
                lines.note(docs, chunks, elapsed)

        report = db.ingest(
            list(paths),
            collection=collection,
            include=include,
            exclude=exclude,
            sync=sync,
            loader_options=options,
            language=language,
            stdin=sys.stdin.buffer,
            stdin_format=stdin_format,
            stdin_key=stdin_key,
            progress=progress,
            reparse=reparse,
        )
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        done = report.added + report.updated + report.unchanged
        rate = _rate(done, report.seconds, "docs")
        skipped = f", {len(report.skipped)} skipped" if report.skipped else ""
        click.echo(
            f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged,"
            f" {report.deleted} deleted, {report.failed} failed{skipped}"
            f" — {report.chunks_embedded} chunks embedded, {report.chunks_reused} reused,"
            f" {report.seconds:.1f}s ({rate})"
        )
        for source, reason in report.errors:
            click.secho(f"  failed: {source}: {reason}", fg="yellow", err=True)
        if verbose:
            for source, reason in report.skipped:
                click.secho(f"  skipped: {source}: {reason}", err=True)
        elif report.skipped:
            reasons = sorted({reason for _, reason in report.skipped})
            click.secho(
                f"  {len(report.skipped)} file(s) skipped ({'; '.join(reasons[:3])}):"
                " --verbose lists them",
                err=True,
            )
    if report.failed and not (report.added or report.updated or report.unchanged):
        raise SystemExit(1)


def _count_files(
    paths: tuple[str, ...], include: tuple[str, ...], exclude: tuple[str, ...]
) -> int | None:
    """How many files the ingest will read (None with stdin, whose size is unknown)."""
    from ..ingest.sources import iter_files

    count = 0
    for raw in paths:
        if raw == "-":
            return None
        path = Path(raw)
        if path.is_dir():
            count += sum(1 for _ in iter_files(path, include=include, exclude=exclude))
        elif path.exists():
            count += 1
    return count or None


def _rate(done: int, seconds: float, unit: str = "") -> str:
    """Throughput, never a misleading 0 while work runs: below one per second it counts
    per minute, and before the first item it says nothing."""
    if not done or seconds <= 0:
        return "…"
    per_second = done / seconds
    unit = f" {unit}" if unit else ""
    return f"{per_second:.0f}{unit}/s" if per_second >= 1 else f"{per_second * 60:.0f}{unit}/min"


class _ProgressLines:
    """Progress as plain lines when stderr is not a terminal (a log, CI): one every 30 s."""

    EVERY = 30.0

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.last = 0.0

    def note(self, docs: int, chunks: int, elapsed: float) -> None:
        if elapsed - self.last < self.EVERY:
            return
        self.last = elapsed
        of = f"/{self.total} files" if self.total else " docs"
        eta = ""
        if self.total and docs:
            eta = f", about {max(self.total - docs, 0) * elapsed / docs:.0f} s left"
        click.echo(
            f"ingest: {docs}{of}, {_rate(docs, elapsed)} · {chunks} chunks,"
            f" {_rate(chunks, elapsed)}{eta}",
            err=True,
        )
