"""Agent state through the library (db.state), the HTTP API (/v1/state) and the CLI, on
both backends; the store's own contract is in tests/contract/test_state.py."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

import engram
from engram.cli import cli
from engram.config import Settings
from engram.errors import InvalidInput, VersionConflict
from engram.server.app import create_app
from engram.state import StateNotFound


def test_put_get_compare_and_set_and_delete(db: engram.Engram) -> None:
    state = db.state
    first = state.put(("user", "42", "planner"), "plan", {"steps": ["a", "b"], "done": 0})
    assert (first.namespace, first.key, first.version) == (("user", "42", "planner"), "plan", 1)
    second = state.put("user/42/planner", "plan", {"steps": ["a", "b"], "done": 1}, if_version=1)
    assert second.version == 2 and second.created_at == first.created_at
    with pytest.raises(VersionConflict) as stale:
        state.put("user/42/planner", "plan", {"done": 9}, if_version=1)
    assert stale.value.status == 412 and stale.value.details == {"version": 2}
    assert state.get(["user", "42", "planner"], "plan").value == {"done": 1, "steps": ["a", "b"]}
    with pytest.raises(VersionConflict):
        state.put("user/42/planner", "plan", {}, if_version=0)  # create only
    state.delete("user/42/planner", "plan", if_version=2)
    with pytest.raises(StateNotFound):
        state.get("user/42/planner", "plan")
    with pytest.raises(StateNotFound):
        state.delete("user/42/planner", "plan")


def test_bad_names_and_values_are_refused_and_nothing_is_written(db: engram.Engram) -> None:
    for namespace, key in ((("a/b",), "k"), ((), "k"), (("a",), ""), (("a",), "x/y"), (("",), "k")):
        with pytest.raises(InvalidInput):
            db.state.put(namespace, key, 1)
    with pytest.raises(InvalidInput):
        db.state.put("a", "k", float("nan"))
    with pytest.raises(InvalidInput):
        db.state.put("a", "k", {1, 2})
    with pytest.raises(InvalidInput):
        db.state.put("a", "k", 1, ttl=0)
    with pytest.raises(InvalidInput):
        db.state.put("a", "k", "text", index=["body"])  # index names fields of an object
    assert db.state.items() == []


def test_ttl_expires_items(db: engram.Engram) -> None:
    db.state.put("s", "short", 1, ttl=0.2)
    db.state.put("s", "long", 2, ttl=3600)
    assert {i.key for i in db.state.items("s")} == {"short", "long"}
    time.sleep(0.3)
    assert [i.key for i in db.state.items("s")] == ["long"]
    with pytest.raises(StateNotFound):
        db.state.get("s", "short")
    assert db.state.put("s", "short", 3, if_version=0).version == 1


def test_items_filters_and_namespaces(db: engram.Engram) -> None:
    for user in ("1", "2", "10"):
        for task, status in (("t1", "open"), ("t2", "done")):
            db.state.put(("user", user, "tasks"), task, {"status": status, "prio": int(user)})
    db.state.put(("user", "1"), "profile", {"name": "Ann"})
    keys = lambda items: [("/".join(i.namespace), i.key) for i in items]  # noqa: E731
    assert keys(db.state.items("user/1")) == [
        ("user/1", "profile"), ("user/1/tasks", "t1"), ("user/1/tasks", "t2"),
    ]  # fmt: skip
    assert keys(db.state.items("user", filter={"status": "open", "prio": {"$gte": 2}})) == [
        ("user/10/tasks", "t1"), ("user/2/tasks", "t1"),
    ]  # fmt: skip
    assert keys(db.state.items("user", limit=2, offset=1)) == [
        ("user/1/tasks", "t1"), ("user/1/tasks", "t2"),
    ]  # fmt: skip
    assert db.state.namespaces() == [
        ("user", "1"), ("user", "1", "tasks"), ("user", "10", "tasks"), ("user", "2", "tasks"),
    ]  # fmt: skip
    assert db.state.namespaces("user", max_depth=2) == [
        ("user", "1"),
        ("user", "10"),
        ("user", "2"),
    ]
    assert db.state.items("user", tenant="other") == []


def test_semantic_search_over_indexed_fields(db: engram.Engram) -> None:
    notes = {
        "n1": "the landlord raised the rent in March",
        "n2": "my cat likes salmon",
        "n3": "call the plumber about the leaking sink",
    }
    for key, text in notes.items():
        db.state.put("user/7/notes", key, {"text": text, "kind": "note"}, index=["text"])
    db.state.put("user/7/notes", "raw", {"text": "landlord rent"})  # not indexed: not searched
    hits = db.state.search("user/7", query="landlord rent March", limit=2)
    assert [h.key for h in hits][0] == "n1" and len(hits) == 2
    assert hits[0].score is not None and hits[0].score >= hits[1].score  # type: ignore[operator]
    assert db.state.search("user/7", query="landlord", filter={"kind": "memo"}) == []


# -- HTTP ---------------------------------------------------------------------------------------
@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash", auth="none")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def error(res: Any, status: int, code: str) -> dict[str, Any]:
    assert res.status_code == status, res.text
    body = res.json()["error"]
    assert body["code"] == code
    return body


def test_http_etags_make_writes_compare_and_set(client: TestClient) -> None:
    res = client.put("/v1/state/user/42/plan", json={"value": {"step": 1}})
    assert res.status_code == 201 and res.headers["etag"] == '"1"'
    assert res.json()["namespace"] == ["user", "42"] and res.json()["key"] == "plan"
    res = client.put(
        "/v1/state/user/42/plan", json={"value": {"step": 2}}, headers={"If-Match": '"1"'}
    )
    assert res.status_code == 200 and res.headers["etag"] == '"2"'
    stale = client.put(
        "/v1/state/user/42/plan", json={"value": {"step": 3}}, headers={"If-Match": '"1"'}
    )
    assert error(stale, 412, "version_conflict")["details"] == {"version": 2}
    exists = client.put(
        "/v1/state/user/42/plan", json={"value": {}}, headers={"If-None-Match": "*"}
    )
    error(exists, 412, "version_conflict")
    got = client.get("/v1/state/user/42/plan")
    assert got.json()["value"] == {"step": 2} and got.headers["etag"] == '"2"'
    error(
        client.delete("/v1/state/user/42/plan", headers={"If-Match": '"1"'}),
        412,
        "version_conflict",
    )
    assert client.delete("/v1/state/user/42/plan", headers={"If-Match": '"2"'}).status_code == 204
    error(client.get("/v1/state/user/42/plan"), 404, "state_not_found")


def test_http_bad_requests_say_why(client: TestClient) -> None:
    error(client.put("/v1/state/onlykey", json={"value": 1}), 422, "invalid_input")
    bad_etag = client.put("/v1/state/a/k", json={"value": 1}, headers={"If-Match": "x"})
    error(bad_etag, 422, "invalid_input")
    # Bodies are checked by their schema: unknown fields and out-of-range values.
    error(client.put("/v1/state/a/k", json={"value": 1, "extra": 2}), 422, "invalid_request")
    error(client.put("/v1/state/a/k", json={"value": 1, "ttl": -1}), 422, "invalid_request")
    assert client.get("/v1/state").json() == {"data": [], "next_cursor": None}


def test_http_list_search_and_namespaces(client: TestClient) -> None:
    for i in range(5):
        body = {"value": {"text": f"note number {i} about rent", "i": i}, "index": ["text"]}
        assert client.put(f"/v1/state/user/1/notes/n{i}", json=body).status_code == 201
    client.put("/v1/state/user/2/notes/x", json={"value": {"text": "other user"}})
    page = client.get("/v1/state", params={"prefix": "user/1", "limit": 2}).json()
    assert [i["key"] for i in page["data"]] == ["n0", "n1"] and page["next_cursor"]
    rest = client.get("/v1/state", params={"prefix": "user/1", "cursor": page["next_cursor"]})
    assert [i["key"] for i in rest.json()["data"]] == ["n2", "n3", "n4"]
    found = client.post(
        "/v1/state:search",
        json={"prefix": ["user", "1"], "query": "note number 3", "filter": {"i": {"$gte": 2}}},
    ).json()["data"]
    assert {i["key"] for i in found} == {"n2", "n3", "n4"} and found[0]["score"] is not None
    spaces = client.post("/v1/state:namespaces", json={"prefix": ["user"], "max_depth": 2})
    assert spaces.json() == {"data": [["user", "1"], ["user", "2"]]}


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_state_round_trip(tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path), "--model", "hash", "state"]
    res = runner.invoke(cli, [*base, "put", "user/1", "prefs", '{"lang": "fr"}', "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["version"] == 1
    res = runner.invoke(
        cli, [*base, "put", "user/1", "prefs", '{"lang": "en"}', "--if-version", "5"]
    )
    assert res.exit_code != 0 and "version" in res.output
    res = runner.invoke(cli, [*base, "get", "user/1", "prefs", "--json"])
    assert json.loads(res.output)["value"] == {"lang": "fr"}
    res = runner.invoke(cli, [*base, "list", "user", "--where", "lang=fr"])
    assert res.exit_code == 0 and "user/1/prefs  v1" in res.output
    assert runner.invoke(cli, [*base, "namespaces"]).output.strip() == "user/1"
    assert runner.invoke(cli, [*base, "delete", "user/1", "prefs"]).exit_code == 0
    assert runner.invoke(cli, [*base, "get", "user/1", "prefs"]).exit_code != 0


# -- several processes --------------------------------------------------------------------------
WRITER = """
import sys, threading
import engram
from engram.config import Settings
from engram.errors import VersionConflict

settings = Settings.build(data_dir=sys.argv[1], embedding_model="hash")
with engram.open(settings=settings) as db:
    def work():
        done = 0
        while done < int(sys.argv[2]):
            item = db.state.get("shared", "counter")
            try:
                db.state.put("shared", "counter", item.value + 1, if_version=item.version)
            except VersionConflict:
                continue
            done += 1
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


def test_compare_and_set_across_processes_on_one_data_directory(tmp_path: Path) -> None:
    """Two processes of four threads each increment one counter by compare-and-set on one
    embedded data directory: no increment is lost."""
    settings = Settings.build(data_dir=tmp_path, embedding_model="hash")
    with engram.open(settings=settings) as db:
        db.state.put("shared", "counter", 0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), "10"], stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    with engram.open(settings=settings) as db:
        final = db.state.get("shared", "counter")
    assert final.value == 2 * 4 * 10 and final.version == 2 * 4 * 10 + 1
