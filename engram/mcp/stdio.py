"""``engram mcp``: the MCP server over stdio, for a client that starts it as a subprocess
(Claude Desktop, Cursor, an agent framework).

The process acts for one tenant (and, optionally, one user of it) with every scope, or only
``read``: whoever can start it can read the data directory anyway. It opens the database as
any other engram process does, so it runs beside ``engram serve`` and other ``engram mcp``
processes on one data directory.
"""

from __future__ import annotations

from typing import Any

import anyio
from mcp.server.stdio import stdio_server

from ..config import Settings
from ..engine import Engram
from ..server.deps import ALL_SCOPES
from ..server.principal import Principal
from ..server.recorder import EventRecorder
from .server import build_server
from .tools import Caller


def run_stdio(
    settings: Settings, *, tenant: str, user_id: str | None = None, read_only: bool = False
) -> None:
    """Serve MCP on stdin/stdout until the client closes it."""
    scopes = frozenset({"read"}) if read_only else ALL_SCOPES - {"admin"}
    principal = Principal(tenant=tenant, scopes=scopes, key_id="stdio", user_id=user_id)
    db = Engram(settings)
    llm = None
    # Tool calls are analytics events too, written in the background as the server's are.
    recorder = EventRecorder(db.store, outbox=db.analytics.forwarding)
    try:
        if settings.llm:
            from ..providers.llms import llm_chain

            llm = llm_chain(
                settings.llm,
                timeout=settings.llm_timeout,
                retries=settings.llm_retries,
                deadline=settings.llm_deadline,
            )
        caller = Caller(db, principal, llm, recorder.record)
        anyio.run(_serve, caller)
    finally:
        recorder.close()
        if llm is not None:
            llm.close()
        db.close()


async def _serve(caller: Caller) -> None:
    def resolve(ctx: Any) -> Caller:
        return caller

    server = build_server(resolve)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
