"""The Memory pages in a real browser (users, one user's data, a memory's history, export,
erasure with confirmation, forgetting) and their rules over HTTP: the API's scopes and
user bindings."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import WebServer, check_accessibility, shoot, sign_in, signed_in


def _seed(web: WebServer) -> dict[str, str]:
    """alice: a conversation with a message, a memory changed once, another memory and an
    agent state item; bob: one memory. Returns the ids made."""
    api = web.api
    r = api.post("/v1/conversations", json={"user_id": "alice", "title": "Trip planning"})
    assert r.status_code == 201, r.text
    conversation = r.json()["id"]
    r = api.post(
        f"/v1/conversations/{conversation}/messages",
        json={"role": "user", "content": "I am flying to Lisbon in May."},
    )
    assert r.status_code == 201, r.text
    r = api.post("/v1/memories", json={"user_id": "alice", "content": "Prefers window seats"})
    assert r.status_code == 201, r.text
    seats = r.json()["id"]
    r = api.patch(f"/v1/memories/{seats}", json={"content": "Prefers aisle seats"})
    assert r.status_code == 200, r.text
    r = api.post("/v1/memories", json={"user_id": "alice", "content": "Is vegetarian"})
    assert r.status_code == 201, r.text
    food = r.json()["id"]
    r = api.put("/v1/state/user/alice/plan", json={"value": {"step": 2, "city": "Lisbon"}})
    assert r.status_code == 201, r.text
    r = api.post("/v1/memories", json={"user_id": "bob", "content": "Likes jazz"})
    assert r.status_code == 201, r.text
    return {"conversation": conversation, "seats": seats, "food": food, "bob": r.json()["id"]}


def test_memory_pages_history_forget_export_and_erase(
    page: Any, web: WebServer, tmp_path: Path
) -> None:
    ids = _seed(web)
    page.on("dialog", lambda dialog: dialog.accept())  # the data-confirm of "Forget"
    sign_in(page, web, then="/memory")
    users = page.locator("ul.users")
    assert users.get_by_role("link", name="alice").count() == 1
    assert users.get_by_role("link", name="bob").count() == 1
    check_accessibility(page)
    page.get_by_label("Find a user").fill("al")
    page.get_by_role("button", name="Find").click()
    page.wait_for_url("**/memory?q=al*")
    assert users.get_by_role("link", name="bob").count() == 0
    users.get_by_role("link", name="alice").click()
    page.wait_for_url("**/memory/users/alice")

    # Conversations (to the chat page), memories, agent state.
    link = page.get_by_role("link", name="Trip planning")
    assert link.get_attribute("href") == f"/chat/{ids['conversation']}"
    seats = page.locator(f"#memory-{ids['seats']}")
    assert "Prefers aisle seats" in seats.inner_text()
    assert page.locator("p.content", has_text="Is vegetarian").count() == 1
    assert page.locator("td.mono", has_text="plan").count() == 1
    assert "Lisbon" in page.locator("code.value").inner_text()

    # A memory's history, loaded in place: added, then updated from window to aisle.
    seats.get_by_role("link", name=re.compile("^History")).click()
    history = page.locator(f"#history-{ids['seats']}")
    history.get_by_text("updated").wait_for()
    assert history.locator("del").inner_text() == "Prefers window seats"
    assert history.locator("ins").inner_text() == "Prefers aisle seats"
    check_accessibility(page)
    shoot(page, "memory")

    # Forget one memory (write scope, with confirmation).
    food = page.locator(f"#memory-{ids['food']}")
    food.get_by_role("button", name=re.compile("^Forget")).click()
    page.get_by_role("status").filter(has_text="forgotten").wait_for()
    assert page.locator("p.content", has_text="Is vegetarian").count() == 0
    assert [m.id for m in web.db.memory.list("alice")] == [ids["seats"]]

    # Export: a JSON download of everything alice owns.
    with page.expect_download() as download:
        page.get_by_role("link", name="Export data (JSON)").click()
    path = tmp_path / "export.json"
    download.value.save_as(path)
    exported = json.loads(path.read_text(encoding="utf-8"))
    assert exported["user_id"] == "alice"
    text = json.dumps(exported)
    assert "Prefers aisle seats" in text and "Lisbon in May" in text

    # Erase, after typing the id: a wrong id erases nothing.
    page.get_by_role("link", name="Erase this user").click()
    page.wait_for_url("**/memory/erase/alice")
    check_accessibility(page)
    page.get_by_label("Type the user id").fill("alic")
    page.get_by_role("button", name="Erase for good").click()
    assert page.get_by_role("alert").filter(has_text="does not match").count() == 1
    assert web.db.memory.list("alice")
    page.get_by_label("Type the user id").fill("alice")
    page.get_by_role("button", name="Erase for good").click()
    page.get_by_role("heading", name="User erased").wait_for()
    assert page.get_by_role("row", name=re.compile("Memories")).inner_text().split()[-1] == "2"
    assert web.db.memory.list("alice", include_deleted=True) == []
    assert web.db.memory.conversations("alice") == []
    assert web.api.get("/v1/memories", params={"user_id": "alice"}).json()["data"] == []
    assert web.db.memory.list("bob")  # only alice went
    page.get_by_role("link", name=re.compile("All users")).click()
    page.wait_for_url(f"{web.url}/memory")
    assert page.locator("ul.users").get_by_role("link", name="bob").count() == 1
    assert page.locator("ul.users").get_by_role("link", name="alice").count() == 0


def test_a_read_session_cannot_export_erase_or_forget(web: WebServer) -> None:
    ids = _seed(web)
    with signed_in(web.url, web.key("read")) as (client, csrf):
        assert client.get("/memory").status_code == 200
        page = client.get("/memory/users/alice")
        assert page.status_code == 200 and "Prefers aisle seats" in page.text
        assert "Erase this user" not in page.text and ">Forget" not in page.text
        assert client.get("/memory/export/alice").status_code == 403
        assert client.get("/memory/erase/alice").status_code == 403
        r = client.post("/memory/erase/alice", data={"csrf": csrf, "confirm": "alice"})
        assert r.status_code == 403
        r = client.post(f"/memory/memories/{ids['food']}/forget", data={"csrf": csrf})
        assert r.status_code == 403
    assert len(web.db.memory.list("alice")) == 2


def test_a_user_bound_session_sees_only_its_user(web: WebServer) -> None:
    ids = _seed(web)
    with signed_in(web.url, web.key("read", "write", user="alice")) as (client, csrf):
        r = client.get("/memory")
        assert r.status_code == 303 and r.headers["location"] == "/memory/users/alice"
        assert client.get("/memory/users/alice").status_code == 200
        r = client.get("/memory/users/bob")
        assert r.status_code == 403 and "Likes jazz" not in r.text
        assert client.get(f"/memory/memories/{ids['bob']}/history").status_code == 404
        r = client.post(f"/memory/memories/{ids['bob']}/forget", data={"csrf": csrf})
        assert r.status_code == 404
        assert client.get("/memory/export/alice").status_code == 403  # admin only
        # Its own memory: forgotten, with the CSRF secret only.
        r = client.post(f"/memory/memories/{ids['food']}/forget", data={"csrf": "forged"})
        assert r.status_code == 403
        r = client.post(f"/memory/memories/{ids['food']}/forget", data={"csrf": csrf})
        assert r.status_code == 303
    assert [m.id for m in web.db.memory.list("bob")] == [ids["bob"]]
    assert [m.id for m in web.db.memory.list("alice")] == [ids["seats"]]


def test_users_are_paged_and_bad_input_is_a_clear_error(web: WebServer) -> None:
    for i in range(53):
        web.db.memory.create_conversation(f"user-{i:02d}")
    with signed_in(web.url, web.admin_key) as (client, _):
        first = client.get("/memory")
        assert first.status_code == 200
        assert "user-49" in first.text and "user-50" not in first.text
        nxt = re.search(r'href="(/memory\?q=&amp;after=[^"]+)"', first.text)
        assert nxt
        second = client.get(nxt.group(1).replace("&amp;", "&"))
        assert "user-50" in second.text and "user-52" in second.text
        assert "user-49" not in second.text
        assert client.get("/memory/users/alice?m=-1").status_code == 422
        r = client.get("/memory?q=" + "x" * 300)
        assert r.status_code == 422 and "q" in r.text
        assert client.get("/memory/memories/nope/history").status_code == 404
