"""``install_web(app)``: the web app's pages and static assets on the API's application."""

from __future__ import annotations

import importlib
import inspect

from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import EngramError, NotFound
from .render import STATIC, error_page

# The page modules of engram.web.pages, each with a ``router``; the order is the match order.
PAGES = (
    "signin",
    "search",
    "sources",
    "chat",
    "knowledge",
    "documents",
    "memory",
    "jobs",
    "dashboard",
    "operations",
)


class _Static(StaticFiles):
    """Static files, cached by browsers for a year: their URLs carry a content hash."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_cached(message: Message) -> None:
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = list(message.get("headers", []))
                headers.append((b"cache-control", b"public, max-age=31536000, immutable"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_cached)


def install_web(app: FastAPI) -> None:
    for name in PAGES:
        app.include_router(importlib.import_module(f"{__package__}.pages.{name}").router)
    app.mount("/static", _Static(directory=STATIC), name="static")
    _html_not_found(app)
    app.add_middleware(_PageGZip)


# Paths whose responses are never compressed: the API (its clients and the fast search path
# pay no compression CPU; SSE streams must flow), MCP and the Prometheus scrape.
_UNCOMPRESSED = ("/v1/", "/mcp", "/metrics")


class _PageGZip:
    """gzip for pages and their assets (a first page load is about a third of its size),
    not for the API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(_UNCOMPRESSED):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _html_not_found(app: FastAPI) -> None:
    """A browser asking for a page that does not exist gets a page saying so; API clients
    (and anything under /v1) keep the JSON error."""
    api_handler = app.exception_handlers[HTTPException]

    async def handler(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == 404 and wants_html and not request.url.path.startswith("/v1/"):
            error: EngramError = NotFound(
                f"no page at {request.url.path}", hint="the pages are listed at the top"
            )
            return error_page(request, error)
        response = api_handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(HTTPException, handler)
