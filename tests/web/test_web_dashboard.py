"""The Dashboard (/dashboard) in a real browser: seeded searches and feedback show up as
charts and non-zero numbers; over HTTP, it is an admin page and takes 7, 30 or 90 days."""

from __future__ import annotations

import re
from typing import Any

import httpx
from conftest import WebServer, check_accessibility, shoot, sign_in, signed_in
from playwright.sync_api import expect

from engram.store.records import EventWrite


def seed(web: WebServer) -> None:
    """Searches (some finding nothing) through the API, and thumbs on answers."""
    r = web.api.post(
        "/v1/collections/kb/documents:batch",
        json={"documents": [{"id": "otters", "text": "Otters hold hands while they sleep."}]},
    )
    assert r.status_code == 201, r.text
    for query in ["otters", "otters", "otters sleep", "volcano", "volcano", "glacier"]:
        r = web.api.post("/v1/search", json={"query": query, "collection": "kb", "mode": "keyword"})
        assert r.status_code == 200, r.text
    web.db.analytics.record(
        [
            EventWrite("default", "feedback", user_id=f"u{i}", data={"rating": rating})
            for i, rating in enumerate(["up", "up", "up", "down"])
        ]
    )


def stat(page: Any, name: str) -> str:
    return str(page.locator(f'[data-stat="{name}"]').inner_text())


def test_dashboard_shows_usage_quality_and_feedback(page: Any, web: WebServer) -> None:
    seed(web)
    sign_in(page, web, then="/dashboard")
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")
    assert page.locator(".chart svg[role=img]").count() == 5
    assert stat(page, "searches") == "6"
    assert stat(page, "zero") == "50.0 %"  # volcano ×2 and glacier found nothing
    assert stat(page, "up") == "3" and stat(page, "down") == "1"
    assert stat(page, "satisfaction") == "75 %" and stat(page, "users") == "4"
    assert stat(page, "p50").endswith(" ms") and stat(page, "p95") != "–"
    zero = page.get_by_role("img", name="Top queries with no result")
    expect(zero.locator("rect")).to_have_count(2)
    expect(zero).to_contain_text("volcano")
    top = page.get_by_role("img", name="Top queries", exact=True)
    expect(top.locator("rect")).to_have_count(4)  # otters, volcano, glacier, otters sleep
    searches = page.get_by_role("img", name="Searches per day")
    expect(searches.locator("polyline")).to_have_count(1)
    check_accessibility(page)
    shoot(page, "dashboard")

    page.get_by_role("link", name="7 days").click()
    page.wait_for_url(re.compile(r"days=7"))
    expect(page.get_by_role("link", name="7 days")).to_have_attribute("aria-current", "page")
    assert stat(page, "searches") == "6"


def test_dashboard_is_for_admins_and_takes_known_periods(web: WebServer) -> None:
    with signed_in(web.url, web.key("read", "write")) as (client, _):
        r = client.get("/dashboard")
        assert r.status_code == 403 and "<html" in r.text
        assert 'href="/dashboard"' not in client.get("/jobs").text  # not in the navigation
    with signed_in(web.url, web.admin_key) as (client, _):
        assert client.get("/dashboard").status_code == 200
        for days in ("90", "7"):
            assert client.get(f"/dashboard?days={days}").status_code == 200
        for bad in ("8", "abc", "-1"):
            r = client.get(f"/dashboard?days={bad}")
            assert r.status_code == 422 and "<html" in r.text, bad
    with httpx.Client(base_url=web.url) as anonymous:
        r = anonymous.get("/dashboard")
        assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")
