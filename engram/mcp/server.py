"""The MCP server of engram, on the official SDK's low-level ``Server``: the tools of
:mod:`engram.mcp.tools` and the document resources of :mod:`engram.mcp.resources`, for any
transport (stdio: :mod:`engram.mcp.stdio`; streamable HTTP on ``engram serve``:
:mod:`engram.mcp.http`).

The transport decides who calls: :func:`build_server` takes a ``resolve`` function giving
the :class:`~engram.mcp.tools.Caller` of each request. Each tool checks the caller's scope as
the HTTP API's routes do (``read`` / ``write``), validates its arguments with its model, runs
in a worker thread, and answers with JSON: the API's response shape, as text and as
structured content. An engram error becomes a tool error (``isError``) whose content is the
API's error body, ``{"error": {"code", "message", "hint"?, "details"?}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anyio.to_thread
from mcp import types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from ..errors import EngramError, InvalidInput, NotFound
from ..server.deps import check_scope
from ..server.errors import internal_error, invalid_request
from . import resources
from .schemas import input_schema
from .tools import TOOLS, Caller, Tool

logger = logging.getLogger("engram.mcp")

Context = ServerRequestContext[Any, Any]
Resolve = Callable[[Context], Caller]

RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for resources/read

INSTRUCTIONS = (
    "engram holds the user's documents, long-term memories, past conversations and agent"
    " state. Use search (or ask, for an answer with citations) before answering questions"
    " about the user's documents; remember durable facts about the user and search_memories"
    " or recall before asking the user something they may already have said."
)


def _version() -> str:
    try:
        return version("engram")
    except PackageNotFoundError:  # a source tree that is not installed
        return "0+unknown"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _tool(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=input_schema(tool.arguments),
        annotations=types.ToolAnnotations(
            title=tool.title,
            read_only_hint=tool.scope == "read",
            destructive_hint=tool.destructive,
            idempotent_hint=tool.idempotent,
            open_world_hint=False,
        ),
    )


def _may(caller: Caller, scope: str) -> bool:
    try:
        check_scope(caller.principal, scope)
    except EngramError:
        return False
    return True


def tool_error(error: EngramError) -> types.CallToolResult:
    """The tool result for ``error``: the HTTP API's JSON error body, flagged isError."""
    body = error.to_dict()
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=_json(body))],
        structured_content=body,
        is_error=True,
    )


async def call(caller: Caller, tool: Tool, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """Run ``tool`` for ``caller``: scope check, argument validation, the call in a thread.
    Raises EngramError."""
    check_scope(caller.principal, tool.scope)
    try:
        args = tool.arguments.model_validate(arguments or {})
    except ValidationError as exc:
        raise invalid_request(
            exc.errors(), hint=f"the arguments of {tool.name} are its inputSchema (tools/list)"
        ) from exc
    result = await anyio.to_thread.run_sync(partial(tool.run, caller, args))
    if tool.name not in RECORDED:  # search and ask record themselves, as search and chat
        caller.record("tool_call", user_id=caller.principal.user_id, data={"tool": tool.name})
    return result


RECORDED = frozenset({"search", "ask"})  # tools that record an event of their own


def build_server(resolve: Resolve) -> Server[Any]:
    """engram's MCP server; ``resolve`` gives the caller of each request (raising
    EngramError, e.g. Unauthorized, when there is none)."""

    async def list_tools(ctx: Context, params: types.PaginatedRequestParams | None) -> Any:
        caller = resolve(ctx)
        # A read-only caller is not offered the tools it may not call.
        return types.ListToolsResult(
            tools=[_tool(t) for t in TOOLS.values() if _may(caller, t.scope)]
        )

    async def call_tool(ctx: Context, params: types.CallToolRequestParams) -> Any:
        tool = TOOLS.get(params.name)
        if tool is None:
            raise MCPError(
                types.INVALID_PARAMS,
                f"unknown tool {params.name!r}",
                data={"tools": sorted(TOOLS)},
            )
        try:
            result = await call(resolve(ctx), tool, params.arguments)
        except EngramError as exc:
            if exc.status >= 500:
                logger.error("tool %s failed: %s", tool.name, exc, exc_info=exc)
            return tool_error(exc)
        except Exception:
            logger.exception("tool %s failed", tool.name)
            return tool_error(internal_error())
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=_json(result))],
            structured_content=result,
        )

    async def list_resources(ctx: Context, params: types.PaginatedRequestParams | None) -> Any:
        cursor = params.cursor if params is not None else None
        found, next_cursor = await _resource_call(
            resolve, ctx, partial(resources.list_documents, cursor=cursor)
        )
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=r.uri,
                    name=r.name,
                    title=r.title,
                    description=r.description,
                    mime_type="text/plain",
                )
                for r in found
            ],
            next_cursor=next_cursor,
        )

    async def list_templates(ctx: Context, params: types.PaginatedRequestParams | None) -> Any:
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    uri_template=resources.TEMPLATE,
                    name="document",
                    title="Document",
                    description="The text of a document of a collection, as indexed (its"
                    " current version). Percent-encode a key that holds '/'.",
                    mime_type="text/plain",
                )
            ]
        )

    async def read_resource(ctx: Context, params: types.ReadResourceRequestParams) -> Any:
        text = await _resource_call(resolve, ctx, partial(resources.read_document, uri=params.uri))
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=params.uri, text=text, mime_type="text/plain")]
        )

    return Server(
        "engram",
        version=_version(),
        title="engram",
        description="Memory and retrieval for AI agents: documents, memories, conversations,"
        " agent state.",
        instructions=INSTRUCTIONS,
        get_tool_input_schema=lambda name: (
            input_schema(TOOLS[name].arguments) if name in TOOLS else None
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
    )


async def _resource_call(resolve: Resolve, ctx: Context, run: Callable[..., Any]) -> Any:
    """``run(caller)`` in a thread for a caller with the read scope; an engram error becomes
    the JSON-RPC error of the MCP specification (data: the API's error body)."""
    try:
        caller = check_read(resolve(ctx))
        return await anyio.to_thread.run_sync(partial(run, caller))
    except EngramError as exc:
        if isinstance(exc, NotFound):
            code = RESOURCE_NOT_FOUND
        elif isinstance(exc, InvalidInput):
            code = types.INVALID_PARAMS
        else:
            code = types.INTERNAL_ERROR if exc.status >= 500 else types.INVALID_REQUEST
        raise MCPError(code, exc.message, data=exc.to_dict()["error"]) from exc


def check_read(caller: Caller) -> Caller:
    check_scope(caller.principal, "read")
    return caller
