"""Analytics (engram.analytics): custom event kinds and their schemas, product events recorded
by the server and the MCP tools, retention and cohorts against a hand-computed example,
breakdowns, export (library, CLI, HTTP), the retention purge, erasure, tenant isolation, and
forwarding to a real PostHog-compatible endpoint on loopback (down then back, two processes).
Every store-level test runs on SQLite and PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from live import free_port

import engram
from engram.analytics.forwarder import Forwarder, backoff
from engram.analytics.schema import check_schema, errors
from engram.analytics.worker import AnalyticsWorker
from engram.cli import cli
from engram.config import Settings
from engram.errors import InvalidInput, NotFound
from engram.mcp.tools import TOOLS, Caller
from engram.server import create_app
from engram.server.principal import Principal
from engram.store.records import EventWrite

REPO = Path(__file__).resolve().parent.parent


def at(day: str, hour: int = 12) -> str:
    return f"{day}T{hour:02d}:00:00.000000+00:00"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the JSON-schema subset --------------------------------------------------------------------
SIGNUP = {
    "type": "object",
    "properties": {
        "plan": {"enum": ["free", "pro"]},
        "seats": {"type": "integer", "minimum": 1, "maximum": 500},
        "referrer": {"type": ["string", "null"], "maxLength": 20, "pattern": "^[a-z]+$"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
    },
    "required": ["plan"],
    "additionalProperties": False,
}


def test_schema_subset_validates_values() -> None:
    check_schema(SIGNUP)
    assert list(errors(SIGNUP, {"plan": "pro", "seats": 3, "referrer": None})) == []
    assert list(errors(SIGNUP, {"plan": "free", "seats": 2.0, "tags": ["a", "b"]})) == []
    assert list(
        errors(SIGNUP, {"seats": 0, "referrer": "Ads!", "tags": ["a", 1, "c"], "x": 1})
    ) == [
        "$: missing required property 'plan'",
        "$.seats: less than 1",
        "$.referrer: does not match '^[a-z]+$'",
        "$.tags: more than 2 items",
        "$.tags[1]: expected string, got integer",
        "$: unexpected property 'x'",
    ]
    assert list(errors(SIGNUP, {"plan": "gold", "seats": True})) == [
        "$.plan: 'gold' is not one of ['free', 'pro']",
        "$.seats: expected integer, got boolean",
    ]
    assert list(errors({"type": "number", "exclusiveMaximum": 1}, 1)) == ["$: not less than 1"]
    assert list(errors({"const": 3}, 4)) == ["$: must be 3"]


@pytest.mark.parametrize(
    "schema, message",
    [
        ({"type": "object", "format": "email"}, "unsupported keyword(s) format"),
        ({"type": "text"}, "type must be one of"),
        ({"properties": {"a": {"$ref": "#/x"}}}, "$.properties.a: unsupported keyword(s) $ref"),
        ({"pattern": "("}, "pattern is not a regular expression"),
        ({"minLength": -1}, "minLength must be a non-negative integer"),
        ({"required": "plan"}, "required must be a list"),
        ([], "a schema is an object"),
    ],
)
def test_unsupported_schemas_are_refused(schema: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_schema(schema)
    assert message in caught.value.message and "supported keywords" in (caught.value.hint or "")


# -- the registry (library) --------------------------------------------------------------------
def test_registry_validates_custom_events(db: engram.Engram) -> None:
    analytics = db.analytics
    analytics.register_kind("signup", SIGNUP, tenant="acme")
    analytics.track("signup", {"plan": "pro", "seats": 4}, user_id="u1", tenant="acme")
    with pytest.raises(InvalidInput) as caught:
        analytics.track("signup", {"plan": "gold"}, tenant="acme")
    assert caught.value.details == {"errors": ["$.plan: 'gold' is not one of ['free', 'pro']"]}
    with pytest.raises(InvalidInput) as unknown:
        analytics.track("upgrade", {}, tenant="acme")
    assert "'upgrade' is not registered" in unknown.value.message
    assert "click, rating, signup" in (unknown.value.hint or "")
    # Kinds are per tenant; built-in names are refused.
    with pytest.raises(InvalidInput):
        analytics.track("signup", {"plan": "pro"}, tenant="globex")
    with pytest.raises(InvalidInput, match="built-in"):
        analytics.register_kind("search", {}, tenant="acme")
    with pytest.raises(InvalidInput, match="invalid event kind name"):
        analytics.register_kind("Sign Up", {}, tenant="acme")
    assert analytics.event_kinds(tenant="acme") == {"signup": SIGNUP}
    assert analytics.event_kinds(tenant="globex") == {}
    analytics.register_kind("signup", {"type": "object"}, tenant="acme")  # replaced
    analytics.track("signup", {"plan": "anything"}, tenant="acme")
    analytics.remove_kind("signup", tenant="acme")
    with pytest.raises(NotFound):
        analytics.remove_kind("signup", tenant="acme")
    with pytest.raises(InvalidInput):
        analytics.track("signup", {"plan": "pro"}, tenant="acme")
    counts = analytics.stats(tenant="acme")["counts"]
    assert counts == {"signup": 2}  # recorded events stay after unregistering


# -- retention and cohorts: a hand-computed example ----------------------------------------------
# Window: Monday 2024-03-04 .. Monday 2024-03-25 (excluded), three weeks; last day 03-24.
ACTIVITY = {
    "old": ["2024-02-20", "2024-03-05"],  # first seen before the window: in no cohort
    "a": ["2024-03-04", "2024-03-05", "2024-03-11", "2024-03-12"],
    "b": ["2024-03-04", "2024-03-04", "2024-03-06"],
    "c": ["2024-03-12", "2024-03-13", "2024-03-19"],
    "d": ["2024-03-20", "2024-03-21"],
    "e": ["2024-03-24"],  # day 1 (03-25) has not begun: not eligible
    "f": ["2024-03-18", "2024-03-25"],  # 03-25 is at `until`: outside
}


def test_retention_and_cohorts_match_a_hand_computed_example(db: engram.Engram) -> None:
    events = [
        EventWrite("acme", "search" if i % 2 else "chat", user_id=user, created_at=at(day, 8 + i))
        for user, days in ACTIVITY.items()
        for i, day in enumerate(days)
    ]
    events.append(EventWrite("globex", "search", user_id="a", created_at=at("2024-03-01")))
    db.store.record_events(events)
    found = db.store.event_insights("acme", "2024-03-04", "2024-03-25")
    # Day 1: eligible a b c d f (first seen by 03-23); retained a (03-05), c (03-13), d (03-21).
    # Day 7: eligible a b c (first seen by 03-17); retained a (03-11), c (03-19).
    assert found["retention"] == [
        {"day": 1, "eligible": 5, "retained": 3, "rate": pytest.approx(0.6)},
        {"day": 7, "eligible": 3, "retained": 2, "rate": pytest.approx(2 / 3)},
        {"day": 30, "eligible": 0, "retained": 0, "rate": None},
    ]
    assert found["cohorts"] == [
        {"week": "2024-03-04", "users": 2, "active": [2, 1, 0]},  # a, b; a again in week 1
        {"week": "2024-03-11", "users": 1, "active": [1, 1]},  # c
        {"week": "2024-03-18", "users": 3, "active": [3]},  # d, e, f
    ]
    top = found["by_user"][0]
    assert top == {
        "user_id": "a",
        "events": 4,
        "searches": 2,
        "chats": 2,
        "first_seen": at("2024-03-04", 8),
        "last_seen": at("2024-03-12", 11),
    }
    assert [u["user_id"] for u in found["by_user"]] == ["a", "b", "c", "d", "e", "f", "old"]
    # The same numbers through stats (and the HTTP schema's field names).
    stats = db.analytics.stats(tenant="acme", since="2024-03-04", until="2024-03-25")
    assert stats["retention"] == found["retention"] and stats["cohorts"] == found["cohorts"]
    empty = db.store.event_insights("initech", "2024-03-04", "2024-03-25")
    assert empty["cohorts"] == [] and empty["by_user"] == [] and empty["by_collection"] == []


def test_breakdown_per_collection(db: engram.Engram) -> None:
    db.store.record_events(
        [
            EventWrite("acme", "search", user_id="u1", result_count=0, data={"collection": "kb"}),
            EventWrite("acme", "search", user_id="u2", result_count=3, data={"collection": "kb"}),
            EventWrite("acme", "chat", user_id="u1", result_count=2, data={"collection": "kb"}),
            EventWrite("acme", "search", result_count=1, data={"collection": "hr"}),
            EventWrite("acme", "ingest", data={"collection": "hr", "added": 2}),
            EventWrite("acme", "ingest", data={"collection": "hr", "added": 1}),
            EventWrite("acme", "click", user_id="u1"),  # no collection
            EventWrite("globex", "search", data={"collection": "kb"}),
        ]
    )
    found = db.analytics.stats(tenant="acme", days=1)["by_collection"]
    assert found == [
        {
            "collection": "hr",
            "events": 3,
            "searches": 1,
            "zero_result_rate": 0.0,
            "chats": 0,
            "users": 0,
        },
        {
            "collection": "kb",
            "events": 3,
            "searches": 2,
            "zero_result_rate": 0.5,
            "chats": 1,
            "users": 2,
        },
    ]


# -- product events from the server --------------------------------------------------------------
@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[TestClient, engram.Engram, dict[str, str]]]:
    with engram.open(settings=settings) as db:
        keys = {
            "acme": db.create_key(tenant="acme", scopes=["admin"])[1],
            "acme_user": db.create_key(tenant="acme", scopes=["read", "write"], user_id="ann")[1],
            "globex": db.create_key(tenant="globex", scopes=["admin"])[1],
        }
        with TestClient(create_app(settings, db=db)) as client:
            yield client, db, keys


def test_server_records_product_events(
    served: tuple[TestClient, engram.Engram, dict[str, str]],
) -> None:
    client, db, keys = served
    acme, ann = auth(keys["acme"]), auth(keys["acme_user"])
    doc = {"id": "d1", "text": "Vacation days: twenty five per year."}
    assert client.post("/v1/collections/kb/documents", json=doc, headers=acme).status_code == 201
    for query in ("vacation days", "zzzqqq"):
        body = {"query": query, "collection": "kb", "mode": "keyword"}
        assert client.post("/v1/search", json=body, headers=ann).status_code == 200
    chat = {"question": "how many vacation days?", "collection": "kb", "user_id": "ann"}
    assert client.post("/v1/chat", json=chat, headers=ann).status_code == 200
    feedback = {"kind": "rating", "rating": 1, "query": "vacation days"}
    assert client.post("/v1/events", json=feedback, headers=ann).status_code == 202
    stats = client.get("/v1/admin/stats", headers=acme).json()
    assert stats["counts"] == {
        "key_created": 2,
        "login": 2,  # each key's first use today, once however often it is used
        "ingest": 1,
        "search": 2,
        "chat": 1,
        "rating": 1,
    }
    assert stats["zero_result_rate"] == 0.5
    kb = stats["by_collection"][0]
    assert kb["collection"] == "kb" and (kb["searches"], kb["chats"]) == (2, 1)
    assert kb["zero_result_rate"] == 0.5 and kb["events"] == 4  # ingest, 2 searches, chat
    assert [u["user_id"] for u in stats["by_user"]] == ["ann"]
    assert stats["retention"][0]["day"] == 1 and stats["cohorts"][0]["users"] == 1
    lines = [json.loads(x) for x in client.get("/v1/admin/events", headers=acme).text.splitlines()]
    logins = [e for e in lines if e["kind"] == "login"]
    assert {e["properties"]["method"] for e in logins} == {"api_key"}
    searches = [e for e in lines if e["kind"] == "search"]
    assert [(e["query"], e["result_count"] > 0) for e in searches] == [
        ("vacation days", True),
        ("zzzqqq", False),
    ]
    assert all(e["user_id"] == "ann" and e["properties"]["collection"] == "kb" for e in searches)
    db.revoke_key(db.keys(tenant="acme")[0].id)
    assert db.analytics.stats(tenant="acme")["counts"]["key_revoked"] == 1
    # globex sees its own events only
    other = client.get("/v1/admin/stats", headers=auth(keys["globex"])).json()
    assert other["counts"] == {"key_created": 1, "login": 1}
    assert "vacation" not in client.get("/v1/admin/events", headers=auth(keys["globex"])).text


def test_custom_kinds_over_http(served: tuple[TestClient, engram.Engram, dict[str, str]]) -> None:
    client, db, keys = served
    acme, ann, globex = auth(keys["acme"]), auth(keys["acme_user"]), auth(keys["globex"])
    event = {"kind": "signup", "properties": {"plan": "pro"}, "user_id": "ann"}
    refused = client.post("/v1/events", json=event, headers=ann)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_input"
    assert refused.json()["error"]["hint"].startswith("kinds this tenant may post: click, rating;")
    search = client.post("/v1/events", json={"kind": "search"}, headers=ann).json()["error"]
    assert "recorded by engram itself" in search["message"]
    # Registering needs the admin scope.
    kind = {"name": "signup", "schema": SIGNUP}
    assert client.post("/v1/admin/event-kinds", json=kind, headers=ann).status_code == 403
    created = client.post("/v1/admin/event-kinds", json=kind, headers=acme)
    assert created.status_code == 201 and created.json() == kind
    bad = {"name": "broken", "schema": {"type": "object", "oneOf": []}}
    res = client.post("/v1/admin/event-kinds", json=bad, headers=acme)
    assert res.status_code == 422 and "oneOf" in res.json()["error"]["message"]
    listed = client.get("/v1/admin/event-kinds", headers=acme).json()
    assert listed["data"] == [kind] and listed["count"] == 1 and "search" in listed["built_in"]
    assert client.post("/v1/events", json=event, headers=ann).status_code == 202
    wrong = {"kind": "signup", "properties": {"plan": "gold", "x": 1}}
    res = client.post("/v1/events", json=wrong, headers=ann)
    assert res.status_code == 422
    assert res.json()["error"]["details"]["errors"] == [
        "$.plan: 'gold' is not one of ['free', 'pro']",
        "$: unexpected property 'x'",
    ]
    # Another tenant has no such kind.
    assert (
        client.post("/v1/events", json=event | {"user_id": None}, headers=globex).status_code == 422
    )
    stats = client.get("/v1/admin/stats", headers=acme).json()
    assert stats["counts"]["signup"] == 1
    exported = client.get("/v1/admin/events", params={"format": "jsonl"}, headers=acme).text
    signup = [json.loads(x) for x in exported.splitlines() if '"signup"' in x]
    assert signup[0]["properties"] == {"plan": "pro"} and signup[0]["user_id"] == "ann"
    assert client.delete("/v1/admin/event-kinds/signup", headers=acme).status_code == 204
    assert client.delete("/v1/admin/event-kinds/signup", headers=acme).status_code == 404
    assert client.post("/v1/events", json=event, headers=ann).status_code == 422
    assert db.analytics.event_kinds(tenant="acme") == {}


def test_mcp_tool_calls_are_recorded(db: engram.Engram) -> None:
    db.add([{"id": "d1", "text": "Vacation days: twenty five per year."}], collection="kb")
    recorded: list[EventWrite] = []
    principal = Principal(tenant="default", scopes=frozenset({"read", "write"}), key_id="stdio")
    caller = Caller(db, principal, None, recorded.append)
    search = TOOLS["search"].arguments.model_validate({"query": "vacation", "collection": "kb"})
    TOOLS["search"].run(caller, search)
    ask = TOOLS["ask"].arguments.model_validate({"question": "vacation?", "collection": "kb"})
    TOOLS["ask"].run(caller, ask)
    import anyio

    from engram.mcp.server import call

    anyio.run(call, caller, TOOLS["list_collections"], {})
    assert [(e.kind, e.data.get("via")) for e in recorded] == [
        ("search", "mcp"),
        ("chat", "mcp"),
        ("tool_call", "mcp"),
    ]
    assert recorded[0].query == "vacation" and recorded[0].result_count == 1
    assert recorded[0].data["collection"] == "kb" and recorded[0].latency_ms is not None
    assert recorded[2].data == {"via": "mcp", "tool": "list_collections"}


# -- export, CLI -------------------------------------------------------------------------------
def _sample(db: engram.Engram) -> None:
    db.store.record_events(
        [
            EventWrite(
                "acme",
                "search",
                user_id="u1",
                query="Tea, hot",
                result_count=2,
                latency_ms=1.5,
                data={"collection": "kb"},
                created_at=at("2024-03-01"),
            ),
            EventWrite(
                "acme",
                "click",
                user_id="u2",
                data={"document": 'say "hi"'},
                created_at=at("2024-03-02"),
            ),
            EventWrite("acme", "chat", created_at=at("2024-03-03")),
            EventWrite("globex", "search", query="secret", created_at=at("2024-03-02")),
        ]
    )


def test_export_formats(db: engram.Engram) -> None:
    _sample(db)
    lines = list(db.analytics.export(tenant="acme", format="jsonl"))
    events = [json.loads(line) for line in lines]
    assert [e["kind"] for e in events] == ["search", "click", "chat"]
    first = events[0]
    assert {k: v for k, v in first.items() if k != "id"} == {
        "kind": "search",
        "user_id": "u1",
        "key_id": None,
        "query": "tea, hot",
        "result_count": 2,
        "latency_ms": 1.5,
        "properties": {"collection": "kb"},
        "created_at": at("2024-03-01"),
    }
    window = db.analytics.export(tenant="acme", since="2024-03-02", until="2024-03-03")
    assert [json.loads(x)["kind"] for x in window] == ["click"]
    text = "".join(db.analytics.export(tenant="acme", format="csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["kind"] for r in rows] == ["search", "click", "chat"]
    assert rows[0]["query"] == "tea, hot" and rows[0]["result_count"] == "2"
    assert json.loads(rows[1]["properties"]) == {"document": 'say "hi"'}
    assert rows[2]["user_id"] == "" and rows[2]["latency_ms"] == ""
    with pytest.raises(InvalidInput):
        db.analytics.export(tenant="acme", format="xml")


def test_export_pages_through_many_events(db: engram.Engram) -> None:
    same = at("2024-06-01")  # one timestamp for all: pages continue by id
    db.store.record_events(
        [EventWrite("acme", "search", query=f"q{i}", created_at=same) for i in range(2345)]
    )
    queries = [json.loads(x)["query"] for x in db.analytics.export(tenant="acme")]
    assert queries == [f"q{i}" for i in range(2345)]


def test_http_export_is_streamed_and_scoped(
    served: tuple[TestClient, engram.Engram, dict[str, str]],
) -> None:
    client, db, keys = served
    _sample(db)
    params = {"format": "csv", "since": "2024-03-01", "until": "2024-03-04"}
    res = client.get("/v1/admin/events", params=params, headers=auth(keys["acme"]))
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(res.text)))
    assert [r["kind"] for r in rows] == ["search", "click", "chat"]
    res = client.get("/v1/admin/events", params={"format": "xml"}, headers=auth(keys["acme"]))
    assert res.status_code == 422
    res = client.get("/v1/admin/events", params={"since": "yesterday"}, headers=auth(keys["acme"]))
    assert res.status_code == 422
    assert client.get("/v1/admin/events", headers=auth(keys["acme_user"])).status_code == 403


def test_cli_stats_kinds_and_export(tmp_path: Path, settings: Settings) -> None:
    with engram.open(settings=settings) as db:
        _sample(db)
        db.analytics.track("search", {"collection": "kb"}, user_id="u1", tenant="acme")
    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir), "--model", "hash"]

    def run(*args: str) -> Any:
        return runner.invoke(cli, [*base, *args], catch_exceptions=False)

    out = run("events", "export", "--tenant", "acme", "--format", "csv", "--until", "2024-03-03")
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[0].startswith("id,created_at,kind")
    assert len(out.output.splitlines()) == 3
    target = tmp_path / "events.jsonl"
    out = run("events", "export", "--tenant", "acme", "--since", "2024-03-02", "-o", str(target))
    assert out.exit_code == 0 and [
        json.loads(x)["kind"] for x in target.read_text().splitlines()
    ] == ["click", "chat", "search"]
    (tmp_path / "schema.json").write_text(json.dumps(SIGNUP))
    out = run(
        "events", "kinds", "add", "signup", f"@{tmp_path / 'schema.json'}", "--tenant", "acme"
    )
    assert out.exit_code == 0 and "registered event kind 'signup'" in out.output
    out = run("events", "kinds", "list", "--tenant", "acme")
    assert json.loads(out.output) == {"name": "signup", "schema": SIGNUP}
    out = run("events", "kinds", "add", "bad", '{"type": "thing"}')
    assert out.exit_code == 1 and "Error: invalid event schema at $" in out.output
    out = run("stats", "--tenant", "acme", "--days", "3")
    assert (
        out.exit_code == 0 and "day-1 retention" in out.output and "active users: 1" in out.output
    )
    out = run("stats", "--tenant", "acme", "--json")
    assert json.loads(out.output)["by_user"][0]["user_id"] == "u1"
    out = run("events", "purge", "--older-than", "30")
    assert out.exit_code == 0 and out.output == "deleted 4 event(s)\n"  # the 2024 sample


# -- erasure and retention ----------------------------------------------------------------------
def test_erasure_removes_events_and_queued_ones(db: engram.Engram) -> None:
    db.settings.analytics_forward_url = "http://127.0.0.1:9"
    db.analytics.track("search", user_id="ann", tenant="acme")
    db.analytics.track("search", user_id="bob", tenant="acme")
    db.analytics.track("search", user_id="ann", tenant="globex")
    assert db.store.outbox_depth() == 3
    db.memory.erase_user("ann", tenant="acme")
    left = [json.loads(line)["user_id"] for line in db.analytics.export(tenant="acme")]
    assert left == ["bob"]
    assert db.store.outbox_depth() == 2
    queued = {(i.tenant, i.event["user_id"]) for i in db.store.claim_outbox("t", limit=9, lease=9)}
    assert queued == {("acme", "bob"), ("globex", "ann")}
    assert db.store.delete_user_events(tenant="globex", user_id="ann") == 1
    assert db.store.outbox_depth() == 1


def test_retention_purge(db: engram.Engram) -> None:
    db.settings.analytics_forward_url = "http://127.0.0.1:9"
    old = EventWrite("acme", "search", created_at="2020-01-01T00:00:00.000000+00:00")
    db.analytics.record([old, EventWrite("globex", "search", created_at=old.created_at)])
    db.analytics.track("search", tenant="acme")
    assert db.analytics.purge() == 0  # retention 0: everything kept
    db.settings.analytics_retention_days = 30
    worker = AnalyticsWorker.from_settings(db.store, db.settings)
    assert worker is not None and worker.forwarder is not None
    assert worker.purge() == 2
    assert db.store.outbox_depth() == 1  # the queued copies of the old events went too
    assert [json.loads(x)["kind"] for x in db.analytics.export(tenant="acme")] == ["search"]
    worker.stop()


# -- forwarding to a PostHog-compatible endpoint -------------------------------------------------
class Capture(ThreadingHTTPServer):
    """A PostHog capture endpoint on loopback: ``POST /batch/`` records the batch."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.batches: list[dict[str, Any]] = []
        self.fail = 0  # answer 503 to this many next requests
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def uuids(self) -> list[str]:
        with self.lock:
            return [e["uuid"] for b in self.batches for e in b["batch"]]


class _Handler(BaseHTTPRequestHandler):
    server: Capture

    def do_POST(self) -> None:
        time.sleep(0.005)  # a real endpoint takes a moment: concurrent senders interleave
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            failing = self.server.fail > 0
            self.server.fail -= failing
            if self.path == "/batch/" and not failing:
                self.server.batches.append(body)
        status = 404 if self.path != "/batch/" else 503 if failing else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": 1}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def capture_port() -> int:
    return free_port()


def _serve(port: int) -> Capture:
    server = Capture(port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_forwarder_survives_the_endpoint_being_down(db: engram.Engram, capture_port: int) -> None:
    url = f"http://127.0.0.1:{capture_port}"
    db.settings.analytics_forward_url = url
    db.settings.analytics_forward_key = "phc_test"
    for i in range(5):
        db.analytics.track("search", {"collection": "kb"}, user_id=f"u{i % 2}", tenant="acme")
    db.store.record_events(
        [EventWrite("acme", "search", query="hello", result_count=0)]
    )  # not queued
    forwarder = Forwarder(db.store, url, "phc_test", batch=5, base_delay=0.2, max_delay=1.0)
    try:
        assert forwarder.run_once() == (0, 0.2)  # nobody listens: refused, backed off
        assert forwarder.run_once() == (0, None)  # nothing is due yet
        server = _serve(capture_port)
        try:
            server.fail = 1
            time.sleep(0.25)
            sent, delay = forwarder.run_once()  # 503: backed off twice as long
            assert (sent, delay) == (0, 0.4)
            assert backoff(1, 0.2, 1.0) == 0.4 and backoff(9, 0.2, 1.0) == 1.0
            assert server.uuids == []
            forwarder.batch = 3
            time.sleep(0.45)
            assert forwarder.run_once()[0] == 3
            assert forwarder.run_once()[0] == 2
            assert forwarder.run_once() == (0, None)
            assert db.store.outbox_depth() == 0
            assert len(server.uuids) == len(set(server.uuids)) == 5  # each event once
            first = server.batches[0]
            assert first["api_key"] == "phc_test"
            event = first["batch"][0]
            assert event["event"] == "search" and event["distinct_id"] == "u0"
            assert event["properties"]["tenant"] == "acme"
            assert event["properties"]["collection"] == "kb" and "$lib" in event["properties"]
            assert event["timestamp"].endswith("+00:00")
            # In the background: a worker thread sends what is recorded, requests never wait.
            worker = AnalyticsWorker(db.store, forwarder=forwarder, interval=0.05)
            worker.start()
            try:
                db.analytics.track("chat", {"collection": "kb"}, tenant="acme")
                deadline = time.monotonic() + 10
                while len(server.uuids) < 6:
                    assert time.monotonic() < deadline, "the worker did not forward"
                    time.sleep(0.02)
            finally:
                worker.stop()
            last = server.batches[-1]["batch"][0]
            assert last["event"] == "chat" and last["distinct_id"] == "tenant:acme"
        finally:
            server.shutdown()
            server.server_close()
    finally:
        forwarder.close()


_SENDER = """
import sys, time
import engram
from engram.analytics.forwarder import Forwarder
from engram.config import Settings
settings = Settings.build(data_dir=sys.argv[1], database_url=sys.argv[2] or None,
                          embedding_model="hash")
with engram.open(settings=settings) as db:
    forwarder = Forwarder(db.store, sys.argv[3], "k", batch=7, base_delay=0.05)
    print("ready", flush=True)
    idle = 0
    while idle < 20:
        sent, _ = forwarder.run_once()
        idle = 0 if sent else idle + 1
        time.sleep(0 if sent else 0.02)
    print(forwarder.sent)
"""


def test_two_processes_forward_each_event_once(
    db: engram.Engram, settings: Settings, capture_port: int
) -> None:
    url = f"http://127.0.0.1:{capture_port}"
    db.settings.analytics_forward_url = url
    total = 300
    db.analytics.record([EventWrite("acme", "search", user_id=f"u{i}") for i in range(total)])
    server = _serve(capture_port)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        other = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SENDER,
                str(settings.data_dir),
                settings.database_url or "",
                url,
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert other.stdout is not None and other.stdout.readline() == "ready\n"
        forwarder = Forwarder(db.store, url, "k", batch=7, base_delay=0.05)
        try:
            deadline = time.monotonic() + 60
            while db.store.outbox_depth():
                assert time.monotonic() < deadline
                if not forwarder.run_once()[0]:
                    time.sleep(0.01)
        finally:
            forwarder.close()
        out, _ = other.communicate(timeout=60)
        assert other.returncode == 0
        assert forwarder.sent > 0 and int(out) > 0  # both took part
        assert forwarder.sent + int(out) == total
        assert len(server.uuids) == len(set(server.uuids)) == total
    finally:
        server.shutdown()
        server.server_close()
