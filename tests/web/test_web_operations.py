"""The Operations page in a real browser (health badges, creating a key shown once, revoking
it) and its rules over HTTP: admin only, the caller's tenant only, the engine's refusal of an
admin key bound to a user."""

from __future__ import annotations

import re
from typing import Any

import httpx
from conftest import WebServer, check_accessibility, shoot, sign_in, signed_in


def test_health_then_a_key_created_shown_once_used_and_revoked(page: Any, web: WebServer) -> None:
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm of "Revoke"
    sign_in(page, web, then="/operations")
    health = page.locator("#health")
    health.locator("[data-check=store]").wait_for()
    for name in ("store", "embedder", "llm"):
        badge = health.locator(f"[data-check={name}] .badge")
        assert badge.inner_text() == "ok", name
        assert "ok" in (badge.get_attribute("class") or "")
    assert "ms" in health.locator("[data-check=store]").inner_text()
    assert health.locator("[data-overall]").get_attribute("data-overall") in ("ok", "degraded")
    check_accessibility(page)
    shoot(page, "operations")

    # A read key, bound to nobody.
    page.get_by_label("Name").fill("reporting")
    page.get_by_label("read", exact=False).first.check()
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("heading", name="Key created").wait_for()
    assert page.get_by_role("alert").filter(has_text="will not be shown again").count() == 1
    check_accessibility(page)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web.url)
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("status").filter(has_text="Copied").wait_for()
    full = page.get_by_label("The new key").input_value()
    assert page.evaluate("navigator.clipboard.readText()") == full
    assert full.startswith("egm_")
    with httpx.Client(base_url=web.url, headers={"Authorization": f"Bearer {full}"}) as client:
        assert client.get("/v1/collections").status_code == 200
        r = client.post("/v1/collections/kb/documents", json={"id": "a", "text": "x"})
        assert r.status_code == 403  # read only

        page.get_by_role("link", name="Back to operations").click()
        key_id = full.split("_")[1]
        row = page.locator(f"tr[data-key='{key_id}']")
        assert "reporting" in row.inner_text() and "read" in row.inner_text()
        assert "active" in row.inner_text()
        row.get_by_role("button", name=re.compile("^Revoke")).click()
        page.get_by_role("status").filter(has_text=f"Key {key_id} was revoked").wait_for()
        assert "revoked" in page.locator(f"tr[data-key='{key_id}']").inner_text()
        assert client.get("/v1/collections").status_code == 401


def test_an_admin_key_bound_to_a_user_is_refused_on_the_form(page: Any, web: WebServer) -> None:
    sign_in(page, web, then="/operations")
    page.get_by_label("Name").fill("bad")
    page.get_by_label("admin", exact=False).first.check()
    page.get_by_label("Bind to one user").fill("alice")
    page.get_by_role("button", name="Create key").click()
    page.get_by_role("alert").filter(has_text="cannot have the admin scope").wait_for()
    assert page.get_by_label("Bind to one user").input_value() == "alice"  # the form is kept
    assert not [k for k in web.db.keys(tenant="default") if k.name == "bad"]
    check_accessibility(page)


def test_operations_is_for_admins_of_their_own_tenant(web: WebServer) -> None:
    other_key, _ = web.db.create_key(tenant="other", scopes=["read"], name="theirs")
    for scopes, user in ((("read",), None), (("write",), None), (("read", "write"), "alice")):
        with signed_in(web.url, web.key(*scopes, user=user)) as (client, csrf):
            assert client.get("/operations").status_code == 403
            assert client.get("/operations/health").status_code == 403
            r = client.post(
                "/operations/keys", data={"csrf": csrf, "name": "x", "scopes": ["admin"]}
            )
            assert r.status_code == 403
    with signed_in(web.url, web.admin_key) as (client, csrf):
        page = client.get("/operations")
        assert page.status_code == 200
        assert "theirs" not in page.text and other_key.id not in page.text
        r = client.post(f"/operations/keys/{other_key.id}/revoke", data={"csrf": csrf})
        assert r.status_code == 404
        assert next(k for k in web.db.keys(tenant="other")).active
        r = client.post("/operations/keys", data={"name": "x", "scopes": ["read"]})
        assert r.status_code == 403  # no CSRF secret
        r = client.post("/operations/keys", data={"csrf": csrf, "name": "x", "scopes": ["root"]})
        assert r.status_code == 422 and "invalid scopes" in r.text
        r = client.post("/operations/keys", data={"csrf": csrf, "name": " ", "scopes": ["read"]})
        assert r.status_code == 422
        r = client.post(
            "/operations/keys", data={"csrf": csrf, "name": "tenant-b", "scopes": ["write"]}
        )
        assert r.status_code == 200 and "egm_" in r.text
        assert r.headers["cache-control"] == "no-store"
        made = next(k for k in web.db.keys(tenant="default") if k.name == "tenant-b")
        assert made.scopes == ("write",) and made.user_id is None
        health = client.get("/operations/health")
        assert health.status_code == 200 and 'data-check="store"' in health.text
