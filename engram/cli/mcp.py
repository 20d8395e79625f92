"""``engram mcp``: serve the Model Context Protocol over stdio (engram.mcp)."""

from __future__ import annotations

import importlib.util

import click

from ..errors import MissingDependency
from .main import Context, cli


@cli.command("mcp")
@click.option(
    "--tenant",
    default="default",
    show_default=True,
    envvar="ENGRAM_TENANT",
    help="Tenant whose collections, memories and state the tools reach.",
)
@click.option(
    "--user",
    "user_id",
    envvar="ENGRAM_USER",
    help="Act for this user only: memories, conversations and state under user/ID.",
)
@click.option("--read-only", is_flag=True, help="Offer only the tools that read.")
@click.pass_obj
def mcp(obj: Context, tenant: str, user_id: str | None, read_only: bool) -> None:
    """Serve the MCP tools and document resources over stdio, for an MCP client."""
    if importlib.util.find_spec("mcp") is None:
        raise MissingDependency("engram mcp needs the MCP SDK", hint="pip install 'engram[mcp]'")
    from ..mcp.stdio import run_stdio

    run_stdio(obj.settings(), tenant=tenant, user_id=user_id, read_only=read_only)
