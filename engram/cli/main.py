"""The ``engram`` command: parse, call the library, print. Errors become one line + a hint.

A one-shot command must start fast, so this module imports only click and engram's errors:
each subcommand's module is imported when that subcommand runs (:data:`COMMANDS`), and the
settings and the engine (pydantic, numpy, the store) when a command first asks for them.
``engram --help`` imports none of them (``tests/test_cli.py`` checks).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import CollectionNotFound, EngramError
from ..unicode import utf8_argv

if TYPE_CHECKING:
    from ..config import Settings
    from ..engine import Engram

# Every subcommand: the module of engram.cli that registers it, and the first sentence of
# its help, shown by `engram --help` without importing that module (a test checks each
# matches the command's own help).
COMMANDS: dict[str, tuple[str, str]] = {
    "ask": ("ask", "Answer a question from a collection, with citations."),
    "backup": (
        "transfer",
        "Back the whole database up into the new folder PATH (consistent while engram runs).",
    ),
    "chat": ("ask", "Chat with a collection: questions read line by line, answers with citations."),
    "collections": ("manage", "List collections with their model, language and size."),
    "delete": (
        "manage",
        "Delete documents (by key) or a whole collection, from every index.",
    ),
    "docs": ("manage", "List the documents of a collection."),
    "doctor": (
        "doctor",
        "Check the data directory, database, models, index files and LLM endpoints.",
    ),
    "eval": (
        "eval",
        "Measure retrieval quality on a BEIR-format dataset (corpus.jsonl, queries.jsonl,"
        " qrels/test.tsv): nDCG@10, Recall@10/100, MRR@10, P@5 and query latency.",
    ),
    "events": ("analytics", "Analytics events: custom kinds, export, retention."),
    "export": (
        "transfer",
        "Export collections (documents, versions, chunks, vectors), conversations, memories"
        " and events to PATH: a new folder, or a .tar / .tar.gz file (docs/export-format.md).",
    ),
    "import": (
        "transfer",
        "Import an engram export (PATH), a Chroma directory (--from-chroma) or a JSON Lines"
        " file (--from-jsonl).",
    ),
    "ingest": (
        "ingest",
        "Ingest files, folders (recursively) or '-' (stdin) into a collection.",
    ),
    "keys": (
        "keys",
        "Manage API keys for `engram serve` (stored hashed; shown once at creation).",
    ),
    "mcp": (
        "mcp",
        "Serve the MCP tools and document resources over stdio, for an MCP client.",
    ),
    "migrate": ("migrate", "Bring the database to the current schema and list its migrations."),
    "recall": (
        "recall",
        "Search a user's past conversations: the best turns, with the turns around them.",
    ),
    "restore": (
        "transfer",
        "Restore a backup made by `engram backup` into the configured database.",
    ),
    "search": ("search", "Search a collection, or several as one ranking."),
    "serve": ("serve", "Serve the HTTP API (reference at /docs, schema at /openapi.json)."),
    "suggest": (
        "search",
        "Complete a prefix from past searches, document titles and the collection's words.",
    ),
    "stats": (
        "analytics",
        "Usage statistics of a tenant: searches, latency, zero results, top queries, active"
        " users, day-N retention, cohorts by first-seen week, per collection and per user.",
    ),
    "state": (
        "state",
        "Agent state: JSON values under keys in namespaces (paths such as user/42/planner).",
    ),
    "versions": ("versions", "Read, compare, restore and purge the versions documents keep."),
    "worker": (
        "worker",
        "Run queued background jobs until stopped (SIGTERM / Ctrl-C), next to `engram serve`.",
    ),
}


class Context:
    """Lazily opened database shared by the subcommands."""

    def __init__(self, **settings: Any) -> None:
        self.overrides = settings
        self._db: Engram | None = None

    def settings(self, **extra: Any) -> Settings:
        from ..config import Settings

        return Settings.build(**{**self.overrides, **extra})

    def prefetch_model(self, collection: str | None = None) -> None:
        """Start loading an embedding model in the background (a search that embeds its
        query calls it before :meth:`db`, whose start-up then overlaps it): the one
        ``collection`` was created with when the embedded database says so and it is a known
        model, else the configured one."""
        from ..providers import prefetch_embedder
        from ..providers.models import known_model

        settings = self.settings()
        name = settings.embedding_model
        if collection is not None and not settings.database_url:
            from ..store.peek import collection_model

            recorded = collection_model(settings.db_path, collection)
            if recorded is not None and known_model(recorded) is not None:
                name = recorded
        prefetch_embedder(name, **settings.embedder_options(name))

    def db(self, *, existing: bool = False, **extra: Any) -> Engram:
        """The database, opened once. ``existing``: a command that only reads refuses a data
        directory that holds no database, instead of creating one there."""
        if self._db is None:
            settings = self.settings(**extra)
            if existing and not settings.database_url and not settings.db_path.exists():
                raise CollectionNotFound(
                    f"no engram database in {settings.data_dir}",
                    hint="ingest documents first (engram ingest PATH), or point --data-dir"
                    " (ENGRAM_DATA_DIR) at an existing data directory",
                )
            from ..engine import Engram

            self._db = Engram(settings)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


GLOBAL_OPTIONS = ("--data-dir", "--model")  # the group's options that take a value


class EngramGroup(click.Group):
    """Turns engram errors into ``Error: ...`` / ``Hint: ...`` and exit code 1, and takes
    the global options anywhere: ``engram search x --data-dir D`` works as
    ``engram --data-dir D search x`` (unless the subcommand has an option of that name).

    Subcommands load on first use: :meth:`get_command` imports the module that registers
    one (:data:`COMMANDS`), and the command list of ``--help`` comes from that table."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    def _load(self, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            importlib.import_module(f"{__package__}.{COMMANDS[name][0]}")  # registers it
        return self.commands.get(name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and self._load(click.utils.make_str(args[0])) is None:
            for name in COMMANDS:  # no such command: click suggests close names from all
                self._load(name)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name][1])
            if not command.hidden:
                rows.append((name, command))
        if rows:  # as click.Group.format_commands, from the table for commands not loaded
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in rows])

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._hoist(list(args)))

    def _hoist(self, args: list[str]) -> list[str]:
        i = 0  # skip the global options given first, to the subcommand's name
        while i < len(args) and args[i].startswith("-"):
            i += 1 if "=" in args[i] or args[i] not in GLOBAL_OPTIONS else 2
        command = self._load(args[i]) if i < len(args) else None
        if command is None:
            return args
        own = {o for p in command.params for o in getattr(p, "opts", [])}
        head, name, tail = args[:i], args[i], args[i + 1 :]
        moved: list[str] = []
        rest: list[str] = []
        j = 0
        while j < len(tail):
            arg = tail[j]
            if arg == "--":
                rest.extend(tail[j:])
                break
            option = arg.split("=", 1)[0]
            if option in GLOBAL_OPTIONS and option not in own:
                if "=" in arg:
                    moved.append(arg)
                elif j + 1 < len(tail):
                    moved.extend(tail[j : j + 2])
                    j += 1
                else:
                    rest.append(arg)  # no value: let click say so
            else:
                rest.append(arg)
            j += 1
        return [*head, *moved, name, *rest]

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EngramError as exc:
            click.secho(f"Error: {exc.message}", fg="red", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            ctx.exit(1)
        finally:
            if isinstance(ctx.obj, Context):
                ctx.obj.close()


@click.group(cls=EngramGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="engram")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ENGRAM_DATA_DIR",
    help="Data directory (default ./.engram).",
)
@click.option(
    "--model",
    envvar="ENGRAM_EMBEDDING_MODEL",
    help="Embedding model (name or directory) of the collections created, whatever their"
    " language; existing ones keep theirs. From ENGRAM_EMBEDDING_MODEL: English ones only.",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, model: str | None) -> None:
    """engram: ingest documents, then search them with hybrid BM25 + vector retrieval."""
    overrides: dict[str, Any] = {"data_dir": data_dir, "embedding_model": model}
    if model and ctx.get_parameter_source("model") is click.core.ParameterSource.COMMANDLINE:
        overrides["multilingual_model"] = model  # named here: for every language
    ctx.obj = Context(**overrides)


def main() -> None:
    """Console-script entry point (subcommands are registered by ``engram.cli``)."""
    # Work in any locale: under an ASCII one (LC_ALL=POSIX, no UTF-8 mode) arguments arrive
    # with lone surrogates for their accented letters, and printing them would fail.
    for stream in (sys.stdout, sys.stderr):
        if (getattr(stream, "encoding", "") or "").lower() in ("ascii", "ansi_x3.4-1968"):
            stream.reconfigure(encoding="utf-8", errors="replace")  # type: ignore[union-attr]
    cli(args=utf8_argv(sys.argv[1:]), prog_name="engram")


if __name__ == "__main__":  # pragma: no cover
    main()
