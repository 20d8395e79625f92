"""The ``engram`` command line. Importing this package registers every subcommand."""

from . import doctor, eval, ingest, keys, manage, migrate, search, serve, state, transfer, worker  # noqa: F401 - each module registers its commands
from .main import cli, main

__all__ = ["cli", "main"]
