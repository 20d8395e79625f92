"""Rendering pages: the Jinja2 environment, :func:`page`, the security headers every page
carries and :class:`WebRoute`, which turns an error into an HTML page (or, for a person not
signed in, a redirect to the sign-in page) instead of the API's JSON.

Templates never see raw HTML from data: autoescaping is on and highlights arrive as
(text, matched) segments. The Content-Security-Policy allows scripts, styles, images and
connections from this server only, so no page can reach another host, and no inline script
or style runs (htmx is configured not to inject its indicator styles).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from ..errors import EngramError, InvalidInput
from .auth import SignInRequired, WebCaller, language
from .i18n import Translator
from .sessions import CSRF_COOKIE

_HERE = Path(__file__).parent
STATIC = _HERE / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none';"
        " form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

# The pages of the navigation, in order: (id, path, scope needed to see it).
NAV: tuple[tuple[str, str, str], ...] = (
    ("search", "/search", "read"),
    ("chat", "/chat", "read"),
    ("knowledge", "/knowledge", "read"),
    ("memory", "/memory", "read"),
    ("jobs", "/jobs", "read"),
    ("dashboard", "/dashboard", "admin"),
    ("operations", "/operations", "admin"),
)


@cache
def static_version(name: str) -> str:
    """A short hash of a static file, appended to its URL so a new release is fetched."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:10]


def static_url(name: str) -> str:
    return f"/static/{name}?v={static_version(name)}"


def number(value: float | int | None, lang: str = "en", digits: int = 0) -> str:
    """1,234.5 in English, 1 234,5 in French (narrow no-break space)."""
    if value is None:
        return "–"
    text = f"{value:,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def moment(value: str | datetime | None) -> str:
    """An ISO timestamp shown to the minute, in UTC: 2026-12-02 14:05."""
    if value is None:
        return "–"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text[:16].replace("T", " ")


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.globals.update(static=static_url, NAV=NAV)
    env.filters.update(moment=moment, urlquote=lambda v: quote(str(v), safe=""))
    return env


def is_htmx(request: Request) -> bool:
    """A request from htmx that wants a fragment: not a history restore (after Back), which
    needs the whole page."""
    headers = request.headers
    return (
        headers.get("hx-request") == "true" and headers.get("hx-history-restore-request") != "true"
    )


def render_text(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(
    request: Request,
    caller: WebCaller,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered for ``caller``. Templates get ``t`` (messages), ``lang``,
    ``caller``, ``csrf``, ``path`` and ``num`` (numbers in the caller's language); a request
    from htmx (``HX-Request``) gets the same template, which may render only its fragment
    when ``htmx`` is true."""
    t = caller.t
    html = render_text(
        template,
        t=t,
        lang=caller.lang,
        caller=caller,
        csrf=caller.csrf,
        path=request.url.path,
        htmx=is_htmx(request),
        num=lambda value, digits=0: number(value, caller.lang, digits),
        **context,
    )
    response = HTMLResponse(
        html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})}
    )
    if caller.new_csrf_cookie:
        set_cookie(response, request, CSRF_COOKIE, caller.new_csrf_cookie)
    return response


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None = None
) -> None:
    """An HttpOnly, SameSite=Strict cookie for the whole site, Secure over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def error_page(request: Request, exc: EngramError) -> Response:
    """An error as a page in the person's language: message, hint and a way back."""
    caller: WebCaller | None = getattr(request.state, "web_caller", None)
    lang = caller.lang if caller else language(request)
    t = caller.t if caller else Translator(lang)
    html = render_text(
        "error.html",
        t=t,
        lang=lang,
        caller=caller,
        csrf=caller.csrf if caller else "",
        path=request.url.path,
        htmx=is_htmx(request),
        error=exc,
    )
    headers = dict(SECURITY_HEADERS)
    if is_htmx(request):
        # htmx swaps only 2xx responses by default: show the error where the result goes.
        headers["HX-Retarget"] = "#flash"
        headers["HX-Reswap"] = "innerHTML"
    return HTMLResponse(html, status_code=exc.status, headers=headers)


def sign_in_redirect(request: Request) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    location = "/sign-in?next=" + quote(target, safe="")
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


class WebRoute(APIRoute):
    """A page route: errors become HTML (EngramError with its status, bad parameters a 422
    page) and a missing session a redirect to sign in."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except EngramError as exc:
                return error_page(request, exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())[1:])
                message = (
                    f"{where}: {first.get('msg', 'invalid input')}" if where else "invalid input"
                )
                return error_page(request, InvalidInput(message))

        return run
