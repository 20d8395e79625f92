"""The web app in a real browser: a real engram server on a loopback port, Debian's Chromium
driven by Playwright's Python API (``executable_path``; Playwright's own browser download is
never used), one browser per test session and a fresh context per test.

Every page a test opens is watched: a request to any host but the server fails the test at
teardown (the app must work offline), as does a failed request to the server itself for a
static asset. :func:`check_accessibility` runs the vendored axe-core in the page and fails on
serious or critical violations; :func:`shoot` saves a small screenshot to ``docs/ui/`` when
``ENGRAM_UI_SCREENSHOTS=1`` (how the README's pictures are made).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from live import serve_app
from test_llms import FakeServer

from engram.config import Settings
from engram.server.app import create_app

REPO = Path(__file__).resolve().parents[2]
AXE = Path(__file__).with_name("vendor") / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "ui"
CHROMIUM = os.environ.get("ENGRAM_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
REQUIRE = os.environ.get("ENGRAM_REQUIRE_SERVICES") == "1"


@dataclass
class WebServer:
    """A running engram server: its URL, an admin key and an API client holding it, and the
    scripted model server its chat answers come from."""

    url: str
    admin_key: str
    api: httpx.Client
    llm: FakeServer
    settings: Settings
    app: Any
    foreign: list[str] = field(default_factory=list)  # requests to other hosts, by any page

    @property
    def db(self) -> Any:
        """The server's own :class:`engram.Engram` (same process)."""
        return self.app.state.db

    def key(self, *scopes: str, user: str | None = None, tenant: str = "default") -> str:
        """A new API key (the full secret)."""
        _, full = self.db.create_key(
            tenant=tenant, scopes=list(scopes) or ["read"], name="test", user_id=user
        )
        return str(full)


def server_settings(tmp_path: Path, llm_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data",
        embedding_model="hash",
        chunk_tokens=64,
        chunk_overlap=8,
        llm=f"openai:scripted@{llm_url}",
        llm_retries=0,
        llm_timeout=5,
    )
    values.update(overrides)
    return Settings.build(**values)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebServer]:
    """A server with API keys on, an admin key, and a scripted model for chat."""
    import engram

    with FakeServer("openai") as llm:
        settings = server_settings(tmp_path, llm.base_url)
        with engram.open(settings=settings) as db:
            _, admin = db.create_key(scopes=["admin"], name="web tests")
        app = create_app(settings)
        with (
            serve_app(app) as url,
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
            ) as api,
        ):
            yield WebServer(url, admin, api, llm, settings, app)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, once per test module: Playwright's synchronous API runs an event loop of
    its own while it is open, which asyncio tests of other modules must not find running."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if REQUIRE:
            pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def open_context(browser: Any, web: WebServer, *, locale: str = "en-US", **options: Any) -> Any:
    """A browser context whose pages may reach only ``web``: any other host is refused and
    recorded in ``web.foreign``."""
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 800}, **options)
    own = urlsplit(web.url).netloc

    def guard(route: Any) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or parts.netloc == own:
            route.continue_()
        else:
            web.foreign.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    return context


@pytest.fixture
def page(browser: Any, web: WebServer) -> Iterator[Any]:
    """A page in a fresh context (English), checked at teardown for requests to other
    hosts and for static assets that failed to load."""
    context = open_context(browser, web)
    tab = context.new_page()
    failed: list[str] = []
    tab.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if "/static/" in r.url and r.status >= 400
            else None
        ),
    )
    yield tab
    context.close()
    assert not web.foreign, f"pages requested other hosts: {web.foreign}"
    assert not failed, f"static assets failed: {failed}"


@contextmanager
def signed_in(url: str, key: str) -> Iterator[tuple[httpx.Client, str]]:
    """An HTTP client signed in to the server at ``url`` with ``key``, and its session's
    CSRF secret (read from a page, as the pages' scripts read it)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        form = client.get("/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text[:300]
        r = client.post("/sign-in", data={"credential": key, "csrf": csrf.group(1)})
        assert r.status_code == 303, r.text
        page = client.get("/search")
        assert page.status_code == 200, page.text[:300]
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token
        yield client, token.group(1)


def sign_in(page: Any, web: WebServer, key: str | None = None, then: str = "/search") -> None:
    page.goto(f"{web.url}/sign-in?next={then}")
    page.get_by_label("API key").fill(key or web.admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{web.url}{then}*")


def check_accessibility(page: Any) -> None:
    """axe-core (vendored) in the page: no serious or critical WCAG 2 A/AA violation. Run
    through the DevTools protocol, so the page's CSP (no inline scripts) does not stop it."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, {runOnly: {type: "tag",
                values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }"""
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"accessibility violations on {page.url}: {bad}"


def shoot(page: Any, name: str) -> None:
    """A screenshot of the page for docs/ui/ (only with ENGRAM_UI_SCREENSHOTS=1)."""
    if os.environ.get("ENGRAM_UI_SCREENSHOTS") != "1":
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=False)
