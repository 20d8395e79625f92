"""``/mcp`` on ``engram serve``: the MCP server over streamable HTTP, behind the API's own
authentication.

Every request is authenticated as a ``/v1`` request is (engram.server.deps.get_principal: an
API key or a JWT in ``Authorization: Bearer``, or ``X-API-Key``; the rate limits too) before
the MCP transport sees it: a missing or wrong key gets the API's 401 with its JSON error body.
The caller's tenant, scopes and bound user travel with the request to the tools, which check
them as the routes do; nothing of a caller outlives its request.

The transport is stateless and answers in JSON: no MCP session lives in a process, so any
worker of ``engram serve --workers N`` (or any server in front of one PostgreSQL database)
answers any request. With ``ENGRAM_AUTH=none`` (loopback only) the Host and Origin headers
must be loopback ones, against DNS rebinding.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ..config import Settings
from ..errors import EngramError, Unauthorized
from ..server.deps import get_db, get_principal
from ..server.errors import api_error, engram_error_response
from ..server.limits import MAX_REQUEST_BYTES
from ..server.principal import Principal
from .server import Context, build_server
from .tools import Caller

PATH = "/mcp"
PRINCIPAL = "engram.principal"  # the ASGI scope key the authenticated caller is kept under

_LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


class McpEndpoint:
    """The ASGI app at ``/mcp``; :meth:`running` must wrap the app's lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.server = build_server(self._caller)
        self.security: TransportSecuritySettings | None = None
        if settings.auth == "none":
            self.security = TransportSecuritySettings(
                allowed_hosts=[*_LOOPBACK, *(f"{h}:*" for h in _LOOPBACK)],
                allowed_origins=[
                    *(f"http://{h}:*" for h in _LOOPBACK),
                    *(f"http://{h}" for h in _LOOPBACK),
                    *settings.cors_origins,
                ],
            )
        self._manager: StreamableHTTPSessionManager | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the transport while the app runs (a new one at each start of the app)."""
        manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,
            json_response=True,
            security_settings=self.security,
            max_request_body_size=MAX_REQUEST_BYTES,
        )
        async with manager.run():
            self._manager = manager
            try:
                yield
            finally:
                self._manager = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            manager = self._manager
            if manager is None:
                raise api_error(503, "unavailable", "the MCP endpoint is not running")
            principal = await get_principal(request, await get_db(request))
        except EngramError as exc:
            await engram_error_response(exc)(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        await manager.handle_request(scope, receive, send)

    @staticmethod
    def _caller(ctx: Context) -> Caller:
        request: Any = ctx.request
        principal: Principal | None = request.scope.get(PRINCIPAL) if request else None
        if principal is None:  # not through __call__: never served unauthenticated
            raise Unauthorized("this request was not authenticated")
        state = request.app.state
        observability = getattr(state, "observability", None)
        events = observability.record if observability is not None else None
        return Caller(state.db, principal, getattr(state, "llm", None), events)


def mount(app: Any, settings: Settings) -> McpEndpoint:
    """Serve MCP at ``/mcp`` of ``app`` (a FastAPI app of engram.server.app)."""
    endpoint = McpEndpoint(settings)
    app.add_route(PATH, endpoint, methods=["GET", "POST", "DELETE"], include_in_schema=False)
    return endpoint
