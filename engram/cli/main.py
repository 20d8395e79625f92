"""The ``engram`` command: parse, call the library, print. Errors become one line + a hint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..config import Settings
from ..engine import Engram
from ..errors import EngramError


class Context:
    """Lazily opened database shared by the subcommands."""

    def __init__(self, **settings: Any) -> None:
        self.overrides = settings
        self._db: Engram | None = None

    def settings(self, **extra: Any) -> Settings:
        return Settings.build(**{**self.overrides, **extra})

    def db(self, **extra: Any) -> Engram:
        if self._db is None:
            self._db = Engram(self.settings(**extra))
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


class EngramGroup(click.Group):
    """Turns engram errors into ``Error: ...`` / ``Hint: ...`` and exit code 1."""

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
@click.option("--model", envvar="ENGRAM_EMBEDDING_MODEL", help="Embedding model name or directory.")
@click.pass_context
def cli(ctx: click.Context, data_dir: Path | None, model: str | None) -> None:
    """engram: ingest documents, then search them with hybrid BM25 + vector retrieval."""
    ctx.obj = Context(data_dir=data_dir, embedding_model=model)


def main() -> None:
    """Console-script entry point (subcommands are registered by ``engram.cli``)."""
    cli(prog_name="engram")


if __name__ == "__main__":  # pragma: no cover
    main()
