"""The API reference pages, offline: ``/docs`` (Swagger UI) and ``/redoc`` (Redoc) load their
scripts from ``/static/docs`` (shipped in the wheel, see ``static/docs/LICENSES.md``), never
from a CDN; and the OpenAPI schema declares how to authenticate, so "Authorize" then "Try it
out" works after pasting an API key (or a JWT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "docs"
PREFIX = "/static/docs"
SCHEME = "bearer"
# Routes anyone may call: no credentials are asked for them.
PUBLIC = ("/v1/health", "/v1/ready")


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets, and add the security scheme to /openapi.json."""
    app.mount(PREFIX, StaticFiles(directory=ASSETS), name="docs-assets")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon.png",
            # validatorUrl: Swagger UI would otherwise ask validator.swagger.io for a badge.
            swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=title,
            redoc_js_url=f"{PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_security(build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def with_security(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a bearer security scheme required by every operation but the public
    health checks (an ``X-API-Key`` header is accepted too, and named in the description)."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An engram API key (egm_…, from `engram keys create`) or a JWT of the "
        "configured identity provider, as `Authorization: Bearer …` (or the key as `X-API-Key`).",
    }
    schema["security"] = [{SCHEME: []}]
    for path in PUBLIC:
        for operation in schema.get("paths", {}).get(path, {}).values():
            operation["security"] = []
    return schema
