"""Signing in to the web app in a real browser, and the session's rules over HTTP: cookie
flags, CSRF on every change, revocation, bindings, and no open redirect."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from conftest import WebServer, check_accessibility, open_context, shoot, sign_in, signed_in


def test_sign_in_page_then_a_session(page: Any, web: WebServer) -> None:
    page.goto(f"{web.url}/search")
    page.wait_for_url(f"{web.url}/sign-in*")  # not signed in: sent to sign in
    check_accessibility(page)
    shoot(page, "sign-in")
    page.get_by_label("API key").fill("egm_notakey_x")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").filter(has_text="key").count() >= 1
    sign_in(page, web)
    cookie = next(c for c in page.context.cookies() if c["name"] == "engram_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{web.url}/sign-in*")
    page.goto(f"{web.url}/search")
    page.wait_for_url(f"{web.url}/sign-in*")  # the session ended on the server


def test_french_interface_from_the_browser_language(browser: Any, web: WebServer) -> None:
    context = open_context(browser, web, locale="fr-FR")
    try:
        tab = context.new_page()
        tab.goto(f"{web.url}/sign-in")
        assert tab.locator("html").get_attribute("lang") == "fr"
        assert tab.get_by_role("button", name="Se connecter").count() == 1
    finally:
        context.close()


def test_sign_in_without_the_csrf_cookie_is_refused(web: WebServer) -> None:
    with httpx.Client(base_url=web.url) as client:
        r = client.post("/sign-in", data={"credential": web.admin_key, "csrf": "forged"})
        assert r.status_code == 403
        assert "engram_session" not in r.cookies


def test_the_api_takes_the_session_only_with_its_csrf_header(web: WebServer) -> None:
    with signed_in(web.url, web.admin_key) as (client, csrf):
        assert client.get("/v1/collections").status_code == 403  # cookie alone: refused
        r = client.get("/v1/collections", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text
        r = client.get("/v1/collections", headers={"X-CSRF-Token": csrf[:-2] + "xx"})
        assert r.status_code == 403


def test_revoking_the_key_ends_its_sessions(web: WebServer) -> None:
    key = web.key("read")
    with signed_in(web.url, key) as (client, csrf):
        assert client.get("/v1/collections", headers={"X-CSRF-Token": csrf}).status_code == 200
        key_id = next(k.id for k in web.db.keys(tenant="default") if key.startswith(f"egm_{k.id}"))
        web.db.revoke_key(key_id)
        assert client.get("/v1/collections", headers={"X-CSRF-Token": csrf}).status_code == 401
        r = client.get("/search")
        assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")


def test_a_read_key_session_cannot_write(web: WebServer) -> None:
    with signed_in(web.url, web.key("read")) as (client, csrf):
        r = client.post(
            "/v1/collections/kb/documents",
            json={"id": "a", "text": "hello"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 403


def test_sign_in_never_redirects_off_site(web: WebServer) -> None:
    with httpx.Client(base_url=web.url) as client:
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/sign-in").text)
        assert csrf
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
            r = client.post(
                "/sign-in",
                data={"credential": web.admin_key, "csrf": csrf.group(1), "next": target},
            )
            assert r.status_code == 303
            assert r.headers["location"] == "/search", target


def test_dev_mode_opens_the_pages_without_sign_in(tmp_path: Any) -> None:
    """``engram serve --dev`` (authentication off, loopback only): every page opens for the
    default tenant, forms still carry a CSRF secret (a cookie's), and the API is unchanged."""
    from fastapi.testclient import TestClient

    from engram.config import Settings
    from engram.server.app import create_app

    settings = Settings.build(data_dir=tmp_path / "data", embedding_model="hash", auth="none")
    with TestClient(create_app(settings)) as client:
        assert client.get("/sign-in", follow_redirects=False).status_code == 303
        page = client.get("/knowledge")
        assert page.status_code == 200 and "Development mode" in page.text
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert csrf and client.cookies.get("engram_csrf") == csrf.group(1)
        for path in ("/search", "/chat", "/memory", "/jobs", "/dashboard", "/operations"):
            assert client.get(path).status_code == 200, path
        # A change without the secret is refused, with it accepted.
        r = client.post("/knowledge", data={"name": "kb", "language": "en"})
        assert r.status_code == 403
        r = client.post(
            "/knowledge",
            data={"name": "kb", "language": "en", "csrf": csrf.group(1)},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        assert [c["name"] for c in client.get("/v1/collections").json()["data"]] == ["kb"]


def test_two_servers_on_one_data_directory_share_sessions(tmp_path: Any) -> None:
    """Sessions live in the store: a sign-in through one server (its own Engram on the
    embedded data directory, as another process would have) works on the other, and a
    sign-out through the other ends it for both. (tests/test_multiprocess.py does the same
    with server processes on PostgreSQL.)"""
    from fastapi.testclient import TestClient

    import engram
    from engram.config import Settings
    from engram.server.app import create_app

    settings = Settings.build(data_dir=tmp_path / "data", embedding_model="hash")
    with engram.open(settings=settings) as db:
        _, key = db.create_key(scopes=["read"])
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        form = re.search(r'name="csrf" value="([^"]+)"', one.get("/sign-in").text)
        assert form
        r = one.post("/sign-in", data={"credential": key, "csrf": form.group(1)})
        assert r.status_code == 200  # followed to /search
        two.cookies.set("engram_session", one.cookies["engram_session"])
        page = two.get("/search", follow_redirects=False)
        assert page.status_code == 200
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert token
        r = two.post("/sign-out", data={"csrf": token.group(1)}, follow_redirects=False)
        assert r.status_code == 303
        after = one.get("/search", follow_redirects=False)
        assert after.status_code == 303 and after.headers["location"].startswith("/sign-in")


def test_sign_in_with_an_identity_providers_token(tmp_path: Any) -> None:
    """With a JWT identity provider configured, the sign-in form takes one of its tokens:
    the session has the token's tenant, scopes and user, and ends when the token expires."""
    import time

    import jwt
    from fastapi.testclient import TestClient

    from engram.config import Settings
    from engram.server.app import create_app

    secret = "s" * 32
    settings = Settings.build(
        data_dir=tmp_path / "data",
        embedding_model="hash",
        jwt_secret=secret,
        jwt_user_claim="uid",
    )
    now = int(time.time())
    claims = {"sub": "alice@idp", "tenant": "acme", "scope": "read write", "uid": "alice"}
    token = jwt.encode({**claims, "exp": now + 3600}, secret, algorithm="HS256")
    with TestClient(create_app(settings)) as client:
        form = client.get("/sign-in")
        assert "API key or token" in form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        bad = jwt.encode({**claims, "exp": now + 3600}, "x" * 32, algorithm="HS256")
        r = client.post("/sign-in", data={"credential": bad, "csrf": csrf.group(1)})
        assert r.status_code == 401 and "invalid token" in r.text
        r = client.post(
            "/sign-in", data={"credential": token, "csrf": csrf.group(1)}, follow_redirects=False
        )
        assert r.status_code == 303, r.text
        page = client.get("/memory", follow_redirects=False)
        # bound to user alice: the memory page opens hers, in tenant acme
        assert page.status_code == 303 and page.headers["location"] == "/memory/users/alice"
        session = client.app.state.web_sessions.find(client.cookies["engram_session"])
        assert (session.tenant, session.user_id, session.scopes) == (
            "acme",
            "alice",
            frozenset({"read", "write"}),
        )
        assert session.expires_at <= datetime.fromtimestamp(now + 3600, UTC).isoformat()
