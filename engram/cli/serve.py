"""``engram serve``: the HTTP API, with uvicorn."""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
from pathlib import Path

import click

from ..errors import ConfigError
from .main import Context, cli


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="ENGRAM_HOST",
    help="Interface to listen on; 0.0.0.0 exposes the API to the network.",
)
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), envvar="ENGRAM_PORT"
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="ENGRAM_WORKERS",
    help="Worker processes; each opens the data directory and loads the models.",
)
@click.option(
    "--dev",
    is_flag=True,
    help="Development: no authentication (loopback only), reload on code changes, debug logs.",
)
@click.pass_obj
def serve(obj: Context, host: str, port: int, workers: int, dev: bool) -> None:
    """Serve the HTTP API (reference at /docs, schema at /openapi.json)."""
    import uvicorn

    from ..server.app import create_app
    from ..server.logs import logging_config
    from ..server.protocol import BODY_TIMEOUT_ENV, HEADER_TIMEOUT_ENV, TimedHttpToolsProtocol

    # A bad setting fails here, with its hint, not in a worker.
    settings = obj.settings(auth="none") if dev else obj.settings()
    if dev and workers > 1:
        raise click.UsageError("--dev reloads a single process: drop --workers")
    if settings.auth == "none" and not _is_loopback(host):
        raise click.UsageError(
            f"ENGRAM_AUTH=none serves without authentication: refused on {host}."
            " Bind a loopback address (127.0.0.1) or use API keys (`engram keys create`)."
        )
    _check_port_free(host, port)
    # Time limits for slow clients, read by the HTTP protocol of every worker process.
    os.environ[HEADER_TIMEOUT_ENV] = str(settings.http_header_timeout)
    os.environ[BODY_TIMEOUT_ENV] = str(settings.http_body_timeout)
    log_level = "debug" if dev else "info"
    # JSON log lines in every process (uvicorn applies the config in each worker); the
    # app's own access log (engram.access, with request ids) replaces uvicorn's.
    log_config = logging_config(log_level)
    if workers == 1 and not dev:
        uvicorn.run(
            functools.partial(create_app, settings),
            factory=True,
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config,
            access_log=False,
            http=TimedHttpToolsProtocol,
        )
        return
    # Worker and reloader processes import the app by name and build their own settings from
    # the environment: hand them the options given on the command line.
    os.environ["ENGRAM_DATA_DIR"] = str(Path(settings.data_dir).resolve())
    os.environ["ENGRAM_EMBEDDING_MODEL"] = settings.embedding_model
    os.environ["ENGRAM_MULTILINGUAL_MODEL"] = settings.multilingual_model
    os.environ["ENGRAM_AUTH"] = settings.auth
    uvicorn.run(
        "engram.server.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=dev,
        reload_dirs=[str(Path(__file__).resolve().parents[1])] if dev else None,
        log_level=log_level,
        log_config=log_config,
        access_log=False,
        http=TimedHttpToolsProtocol,
    )


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, in one line with a hint, before any worker
    starts (uvicorn would log a traceback-free JSON line and exit 3)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use",
                    hint="stop the server using it, or serve on another port (--port, ENGRAM_PORT)",
                ) from exc
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
