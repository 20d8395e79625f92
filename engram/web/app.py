"""``install_web(app)``: the web app's pages and static assets on the API's application."""

from __future__ import annotations

import importlib

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from .render import STATIC

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
        async def send_cached(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start" and message.get("status") == 200:
                headers = list(message.get("headers", []))
                headers.append((b"cache-control", b"public, max-age=31536000, immutable"))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, send_cached)


def install_web(app: FastAPI) -> None:
    for name in PAGES:
        try:
            module = importlib.import_module(f"{__package__}.pages.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.pages.{name}":
                raise
            continue  # an area not built yet
        app.include_router(module.router)
    app.mount("/static", _Static(directory=STATIC), name="static")
