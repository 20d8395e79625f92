"""The chat page in a real browser: a streamed answer with linked citations, the conversation
listed and reopened, a follow-up continuing it, feedback recorded as an analytics event; and
over HTTP: another user's conversation stays hidden, the no-JavaScript form, extractive
answers, bad feedback refused."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from conftest import WebServer, check_accessibility, server_settings, shoot, sign_in, signed_in
from live import serve_app
from test_llms import completion, sse

from engram.server.app import create_app

DOCS = [
    {
        "id": "security/keys.md",
        "title": "Key rotation",
        "text": "Rotate API keys every 90 days. Revoke a key at once when it leaks.",
    },
    {
        "id": "hr/leave.md",
        "title": "Leave policy",
        "text": "Employees get 25 days of paid leave per year, carried over until March.",
    },
]


def _seed(web: WebServer) -> None:
    r = web.api.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
    assert r.status_code in (200, 201), r.text


def _events(web: WebServer, kind: str) -> list[dict[str, Any]]:
    web.app.state.observability.flush()
    lines = web.db.analytics.export(tenant="default")
    found = [json.loads(line) for line in lines if line.strip()]
    return [e for e in found if e.get("kind") == kind]


def test_ask_stream_cite_reopen_continue_and_rate(page: Any, web: WebServer) -> None:
    _seed(web)
    # The first answer stalls after its first token until released: it must show by then.
    web.llm.script.append(sse(["Rotate keys ", "every 90 days [1]."], stall=10))
    sign_in(page, web, then="/chat")
    check_accessibility(page)
    page.get_by_label("Collection").select_option("kb")
    page.get_by_label("Your question").fill("How often do we rotate API keys?")
    page.get_by_role("button", name="Ask").click()

    answer = page.locator("li.msg.assistant .msg-text").last
    assert answer.get_attribute("aria-live") == "polite"
    page.wait_for_function(
        "() => document.querySelector('li.msg.assistant .msg-text').textContent"
        ".includes('Rotate keys')"
    )
    assert "every 90 days" not in answer.inner_text()  # streamed: the rest is not here yet
    web.llm.release.set()
    page.get_by_role("status").filter(has_text="Answer complete.").wait_for()
    assert answer.inner_text() == "Rotate keys every 90 days [1]."

    marker = answer.get_by_role("link", name="[1]", exact=True)
    href = marker.get_attribute("href") or ""
    parts = urlsplit(href)
    assert parts.path == "/source/kb/security%2Fkeys.md"
    query = parse_qs(parts.query)
    assert query["version"] == ["1"] and int(query["end"][0]) > int(query["start"][0]) >= 0
    source = page.locator("li.msg.assistant ul.citations a").first
    assert source.get_attribute("href") == href
    assert "Key rotation" in source.inner_text()

    # The conversation is listed (and is the page's address now).
    listed = page.locator("#conversations a", has_text="How often do we rotate API keys?")
    assert listed.count() == 1
    conversation_url = page.url
    assert re.search(r"/chat/[^/?#]+$", conversation_url)

    # Feedback: an event of kind "feedback" with rating "up".
    page.get_by_role("button", name="Helpful", exact=True).click()
    page.get_by_role("status").filter(has_text="Thanks for your feedback.").wait_for()
    assert page.get_by_role("button", name="Helpful", exact=True).get_attribute("aria-pressed") == (
        "true"
    )
    (event,) = _events(web, "feedback")
    assert event["properties"]["rating"] == "up" and event["properties"]["collection"] == "kb"
    conversation_id = conversation_url.rsplit("/", 1)[1]
    assert event["properties"]["conversation_id"] == conversation_id
    check_accessibility(page)
    shoot(page, "chat")

    # A follow-up continues the same conversation (the model first rewrites the question).
    web.llm.script.append(completion("How long is paid leave?"))
    web.llm.script.append(sse(["You get 25 days ", "of paid leave [1]."]))
    page.get_by_label("Your question").fill("And how much leave do we get?")
    page.get_by_label("Your question").press("Enter")
    page.locator("li.msg.assistant").nth(1).get_by_role("link", name="[1]", exact=True).wait_for()
    messages = web.db.memory.messages(conversation_id, tenant="default")
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1].metadata["citations"][0]["document"] == "security/keys.md"
    assert page.locator("#conversations a").count() == 1

    # Reopened, it shows every message with its linked citations.
    page.goto(f"{web.url}/chat")
    page.get_by_role("link", name="How often do we rotate API keys?").click()
    page.wait_for_url(conversation_url)
    texts = page.locator("li.msg .msg-text").all_inner_texts()
    assert texts == [
        "How often do we rotate API keys?",
        "Rotate keys every 90 days [1].",
        "And how much leave do we get?",
        "You get 25 days of paid leave [1].",
    ]
    first = page.locator("li.msg.assistant").first.get_by_role("link", name="[1]", exact=True)
    assert first.get_attribute("href") == href
    second = page.locator("li.msg.assistant").nth(1).locator("ul.citations a").first
    assert "/source/kb/hr%2Fleave.md?" in (second.get_attribute("href") or "")
    assert page.get_by_role("heading", name="How often do we rotate API keys?").count() == 1
    check_accessibility(page)


def test_french_chat_page(browser: Any, web: WebServer) -> None:
    from conftest import open_context

    context = open_context(browser, web, locale="fr-FR")
    try:
        tab = context.new_page()
        sign_in_fr(tab, web)
        assert tab.get_by_role("heading", name="Discussion").count() == 1
        assert tab.get_by_label("Votre question").count() == 1
        check_accessibility(tab)
    finally:
        context.close()


def sign_in_fr(tab: Any, web: WebServer) -> None:
    tab.goto(f"{web.url}/sign-in?next=/chat")
    tab.get_by_label("Clé d’API").or_(tab.locator("#credential")).first.fill(web.admin_key)
    tab.locator("form[action='/sign-in'] button[type=submit]").click()
    tab.wait_for_url(f"{web.url}/chat*")


def test_a_user_bound_key_sees_only_its_own_conversations(web: WebServer) -> None:
    mine = web.db.memory.create_conversation("alice", title="Alice's question", tenant="default")
    theirs = web.db.memory.create_conversation("bob", title="Bob's secret", tenant="default")
    web.db.memory.append_turn(theirs.id, "what is bob's salary?", "secret", tenant="default")
    with signed_in(web.url, web.key("read", "write", user="alice")) as (client, csrf):
        listing = client.get("/chat")
        assert "Alice&#39;s question" in listing.text and "Bob" not in listing.text
        assert client.get(f"/chat/{mine.id}").status_code == 200
        r = client.get(f"/chat/{theirs.id}")
        assert r.status_code == 404 and "salary" not in r.text
        # Nor can they rate, or append to, bob's conversation.
        messages = web.db.memory.messages(theirs.id, tenant="default")
        r = client.post(
            "/chat/feedback",
            json={"rating": "up", "conversation_id": theirs.id, "message_id": messages[1].id},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 404
        r = client.post(
            "/chat",
            data={"csrf": csrf, "question": "hi", "conversation_id": theirs.id},
        )
        assert r.status_code == 404
    assert len(web.db.memory.messages(theirs.id, tenant="default")) == 2


def test_tenant_wide_callers_list_their_web_conversations(web: WebServer) -> None:
    web.db.memory.create_conversation("bob", title="Bob's chat", tenant="default")
    with signed_in(web.url, web.admin_key) as (client, _):
        r = client.get("/chat")
        assert r.status_code == 200 and "Bob&#39;s chat" not in r.text
        assert 'data-user="web:' in r.text


def test_read_only_keys_read_but_cannot_ask(web: WebServer) -> None:
    with signed_in(web.url, web.key("read")) as (client, csrf):
        r = client.get("/chat")
        assert r.status_code == 200 and 'id="ask"' not in r.text
        r = client.post("/chat", data={"csrf": csrf, "question": "hello?"})
        assert r.status_code == 403


def test_bad_input_gets_clear_errors(web: WebServer) -> None:
    with signed_in(web.url, web.admin_key) as (client, csrf):
        assert client.get("/chat/nope").status_code == 404
        r = client.post("/chat", data={"csrf": csrf, "question": "  "})
        assert r.status_code == 422 and "question" in r.text
        r = client.post("/chat", data={"question": "no csrf"})
        assert r.status_code == 403
        c = web.db.memory.create_conversation("x", tenant="default")
        r = client.post(
            "/chat/feedback",
            json={"rating": "meh", "conversation_id": c.id, "message_id": 1},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 422 and "rating" in r.text
        r = client.post(
            "/chat/feedback",
            json={"rating": "up", "conversation_id": c.id, "message_id": "x"},
            headers={"X-CSRF-Token": csrf},
        )
        assert r.status_code == 422


@pytest.fixture
def extractive(tmp_path: Path) -> Iterator[tuple[str, str, Any]]:
    """A server with no language model: (url, admin key, app)."""
    import engram

    settings = server_settings(tmp_path, "http://127.0.0.1:9", llm="")
    with engram.open(settings=settings) as db:
        _, admin = db.create_key(scopes=["admin"], name="web tests")
    app = create_app(settings)
    with serve_app(app) as url:
        yield url, admin, app


def test_without_javascript_or_a_model_answers_are_extractive_with_citations(
    extractive: tuple[str, str, Any],
) -> None:
    url, admin, app = extractive
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as api:
        r = api.post("/v1/collections/kb/documents:batch", json={"documents": DOCS})
        assert r.status_code in (200, 201), r.text
    with signed_in(url, admin) as (client, csrf):
        r = client.post(
            "/chat",
            data={
                "csrf": csrf,
                "question": "How often should API keys be rotated?",
                "collection": "kb",
            },
        )
        assert r.status_code == 303, r.text
        location = r.headers["location"]
        assert location.startswith("/chat/")
        r = client.get(location.split("#")[0])
        assert r.status_code == 200
        assert "Rotate API keys every 90 days" in r.text
        assert "Quoted from the sources" in r.text
        assert re.search(
            r'href="/source/kb/security%2Fkeys.md\?version=1&amp;start=\d+&amp;end=\d+"', r.text
        )
        # The no-JavaScript feedback form records the event too and comes back with thanks.
        conversation_id = location.split("/chat/")[1].split("?")[0]
        message_id = int(location.split("#m-")[1])
        r = client.post(
            "/chat/feedback",
            data={
                "csrf": csrf,
                "rating": "down",
                "conversation_id": conversation_id,
                "message_id": str(message_id),
                "collection": "kb",
            },
        )
        assert r.status_code == 303
        r = client.get(r.headers["location"])
        assert "Thanks for your feedback." in r.text
    app.state.observability.flush()
    events = [json.loads(x) for x in app.state.db.analytics.export(tenant="default")]
    ratings = [e["properties"]["rating"] for e in events if e["kind"] == "feedback"]
    assert ratings == ["down"]
