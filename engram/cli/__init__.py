"""The ``engram`` command line. Each subcommand's module is imported when it is first used
(``engram.cli.main.COMMANDS``)."""

from .main import cli, main

__all__ = ["cli", "main"]
