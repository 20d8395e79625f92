"""Conversations and memories (``db.memory``) on every backend, with the hash embedder."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import engram
from engram.errors import (
    ConversationNotFound,
    InvalidInput,
    MemoryNotFound,
    ModelMismatch,
    NotFound,
    QueryTooLong,
)
from engram.memory import DEDUP_THRESHOLD, MemoryService
from engram.memory.service import content_hash
from engram.store.postgres import PostgresStore
from engram.store.sqlite import SQLiteStore

USER_TABLES = ("conversations", "messages", "memories", "memory_history")


@pytest.fixture(params=["sqlite-memory", "sqlite-file", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[engram.Engram]:
    if request.param == "sqlite-memory":
        settings = engram.Settings.build(data_dir=tmp_path, embedding_model="hash")
        database = engram.Engram(settings, store=SQLiteStore(":memory:"))
    elif request.param == "postgres":
        database = engram.open(
            tmp_path, embedding_model="hash", database_url=request.getfixturevalue("pg_url")
        )
    else:
        database = engram.open(tmp_path, embedding_model="hash")
    yield database
    database.close()


@pytest.fixture
def mem(db: engram.Engram) -> MemoryService:
    return db.memory


def table_rows(db: engram.Engram, sql: str, params: tuple[object, ...] = ()) -> list[tuple]:
    """Read the tables directly: with sqlite3 (a second connection when there is a file), or
    with a connection of its own to PostgreSQL, as the system tenant (every tenant's rows)."""
    store = db.store
    if isinstance(store, PostgresStore):
        import psycopg

        with psycopg.connect(store.url) as conn:
            conn.execute("SELECT set_config('engram.tenant', '*', true)")
            return conn.execute(sql.replace("?", "%s"), params).fetchall()
    assert isinstance(store, SQLiteStore)
    if store.path == ":memory:":
        return store._conn.execute(sql, params).fetchall()
    conn = sqlite3.connect(store.path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def owned_counts(db: engram.Engram, tenant: str, user_id: str) -> dict[str, int]:
    """Rows of each memory table that belong to (tenant, user_id)."""
    owner = (tenant, user_id)
    convs = "SELECT id FROM conversations WHERE tenant = ? AND user_id = ?"
    mems = "SELECT id FROM memories WHERE tenant = ? AND user_id = ?"
    sql = {
        "conversations": f"SELECT count(*) FROM ({convs})",
        "messages": f"SELECT count(*) FROM messages WHERE conversation_id IN ({convs})",
        "memories": f"SELECT count(*) FROM ({mems})",
        "memory_history": f"SELECT count(*) FROM memory_history WHERE memory_id IN ({mems})",
    }
    return {table: table_rows(db, q, owner)[0][0] for table, q in sql.items()}


# -- memories ---------------------------------------------------------------------------------
def test_memory_property_is_one_service(db: engram.Engram) -> None:
    assert db.memory is db.memory


def test_add_search_update_delete_history(mem: MemoryService) -> None:
    tea = mem.add("I drink green tea every morning", user_id="ann", metadata={"topic": "food"})
    dog = mem.add("My dog is a border collie named Rex", user_id="ann", source="conv-1")
    assert not tea.deduplicated and tea.content == "I drink green tea every morning"
    assert (dog.source, tea.source, tea.metadata) == ("conv-1", "api", {"topic": "food"})
    assert mem.get(tea.id) == tea

    hits = mem.search("what is the name of my dog?", user_id="ann", k=5)
    assert hits[0].memory.id == dog.id
    assert hits[0].explain["vector"]["rank"] == 1 and hits[0].explain["keyword"]["rank"] == 1
    assert [h.memory.id for h in mem.search("tea", user_id="ann", k=1)] == [tea.id]

    updated = mem.update(tea.id, "I drink black coffee every morning")
    assert updated.content == "I drink black coffee every morning"
    assert updated.metadata == {"topic": "food"}  # kept when not given
    assert mem.search("coffee", user_id="ann", k=1)[0].memory.id == tea.id

    mem.delete(tea.id)
    with pytest.raises(MemoryNotFound):
        mem.get(tea.id)
    with pytest.raises(MemoryNotFound):
        mem.delete(tea.id)  # already gone
    with pytest.raises(MemoryNotFound):
        mem.update(tea.id, "too late")
    assert tea.id not in {h.memory.id for h in mem.search("coffee", user_id="ann")}
    assert [m.id for m in mem.list("ann")] == [dog.id]
    assert {m.id for m in mem.list("ann", include_deleted=True)} == {dog.id, tea.id}

    history = mem.history(tea.id)  # readable after the delete
    assert [(e.event, e.old_content, e.new_content) for e in history] == [
        ("add", None, "I drink green tea every morning"),
        ("update", "I drink green tea every morning", "I drink black coffee every morning"),
        ("delete", "I drink black coffee every morning", None),
    ]
    assert [e.event for e in mem.history(dog.id)] == ["add"]


def test_update_replaces_metadata_when_given(mem: MemoryService) -> None:
    m = mem.add("Prefers the window seat", user_id="u", metadata={"a": 1})
    assert mem.update(m.id, "Prefers the aisle seat", metadata={"b": 2}).metadata == {"b": 2}


def test_same_text_with_other_case_and_spacing_is_merged(mem: MemoryService) -> None:
    first = mem.add("Lives in Lyon", user_id="u", metadata={"a": 1, "b": 1})
    again = mem.add("  lives   IN lyon\n", user_id="u", metadata={"b": 2}, source="conv-9")
    assert again.deduplicated and again.id == first.id
    assert again.content == "lives   IN lyon"  # the newer wording; the old is in history
    assert again.metadata == {"a": 1, "b": 2}
    assert again.source == "conv-9"
    assert len(mem.list("u")) == 1
    assert [(e.event, e.old_content) for e in mem.history(first.id)] == [
        ("add", None),
        ("merge", "Lives in Lyon"),
    ]


def test_near_duplicate_by_vector_is_merged(mem: MemoryService) -> None:
    # Punctuation differs, so the normalised texts differ; the vectors are the same.
    first = mem.add("Allergic to peanuts.", user_id="u")
    assert content_hash("Allergic to peanuts.") != content_hash("Allergic to peanuts!")
    again = mem.add("Allergic to peanuts!", user_id="u")
    assert again.deduplicated and again.id == first.id
    assert mem.history(first.id)[-1].event == "merge"


def test_different_memories_stay_separate(mem: MemoryService) -> None:
    texts = ["Lives in Lyon", "Works as a nurse", "Allergic to peanuts", "Has two cats"]
    records = [mem.add(t, user_id="u") for t in texts]
    assert not any(r.deduplicated for r in records)
    assert len({r.id for r in records}) == 4
    assert sorted(m.content for m in mem.list("u")) == sorted(texts)
    assert all(len(mem.history(r.id)) == 1 for r in records)


def test_dedup_is_per_user_and_agent_and_skips_deleted(mem: MemoryService) -> None:
    base = mem.add("Likes jazz", user_id="u")
    assert not mem.add("Likes jazz", user_id="v").deduplicated
    by_agent = mem.add("Likes jazz", user_id="u", agent_id="dj")
    assert not by_agent.deduplicated and by_agent.id != base.id
    assert mem.add("likes JAZZ", user_id="u", agent_id="dj").id == by_agent.id
    mem.delete(base.id)
    fresh = mem.add("Likes jazz", user_id="u")
    assert not fresh.deduplicated and fresh.id != base.id


def test_agent_narrows_list_and_search(mem: MemoryService) -> None:
    own = mem.add("Birthday is in May", user_id="u")
    agent = mem.add("Prefers short answers", user_id="u", agent_id="helper")
    assert {m.id for m in mem.list("u")} == {own.id, agent.id}
    assert [m.id for m in mem.list("u", agent_id="helper")] == [agent.id]
    assert [h.memory.id for h in mem.search("answers", user_id="u", agent_id="helper")] == [
        agent.id
    ]


def test_dedup_threshold_is_documented() -> None:
    assert 0 < DEDUP_THRESHOLD < 1
    assert "DEDUP_THRESHOLD" in (MemoryService.add.__doc__ or "")


@pytest.mark.parametrize("bad", ["", "   \n", "x" * 10_001])
def test_bad_content_is_refused(mem: MemoryService, bad: str) -> None:
    with pytest.raises(InvalidInput):
        mem.add(bad, user_id="u")
    conv = mem.create_conversation("u")
    with pytest.raises(InvalidInput):
        mem.append(conv.id, "user", bad)
    assert mem.list("u") == [] and mem.messages(conv.id) == []


def test_other_bad_input_is_refused(mem: MemoryService) -> None:
    assert mem.add("x" * 10_000, user_id="u").content == "x" * 10_000
    conv = mem.create_conversation("u")
    with pytest.raises(InvalidInput, match="role"):
        mem.append(conv.id, "robot", "hello")
    with pytest.raises(InvalidInput):
        mem.add("fine", user_id="")
    with pytest.raises(InvalidInput):
        mem.add("fine", user_id="u", metadata={"when": object()})
    with pytest.raises(InvalidInput):
        mem.search("", user_id="u")
    with pytest.raises(QueryTooLong):
        mem.search("q" * 5000, user_id="u")
    with pytest.raises(InvalidInput):
        mem.search("fine", user_id="u", k=0)
    with pytest.raises(InvalidInput):
        mem.messages(conv.id, last=0)
    with pytest.raises(MemoryNotFound):
        mem.get("no-such-id")


def test_search_refuses_another_embedding_model(tmp_path: Path) -> None:
    with engram.open(tmp_path, embedding_model="hash") as db:
        db.memory.add("Lives in Lyon", user_id="u")
    with engram.open(tmp_path, embedding_model="hash-32") as db:
        with pytest.raises(ModelMismatch, match="hash-64"):
            db.memory.search("Lyon", user_id="u")
        db.memory.add("Someone else's fact", user_id="other")  # other users are unaffected


def test_memories_survive_reopening(tmp_path: Path) -> None:
    with engram.open(tmp_path, embedding_model="hash") as db:
        m = db.memory.add("Speaks Portuguese", user_id="u")
        conv = db.memory.create_conversation("u", title="Intro")
        db.memory.append(conv.id, "user", "Olá")
    with engram.open(tmp_path, embedding_model="hash") as db:
        assert db.memory.search("Portuguese", user_id="u")[0].memory.id == m.id
        assert [x.content for x in db.memory.messages(conv.id)] == ["Olá"]


# -- tenants ----------------------------------------------------------------------------------
def test_tenants_never_see_each_others_rows(db: engram.Engram, mem: MemoryService) -> None:
    a = mem.add("Favourite colour is teal", user_id="u", tenant="acme")
    b = mem.add("Favourite colour is teal", user_id="u", tenant="globex")
    assert a.id != b.id and not b.deduplicated  # dedup stays inside a tenant
    conv = mem.create_conversation("u", tenant="acme")
    mem.append(conv.id, "user", "secret plan", tenant="acme")

    assert [h.memory.id for h in mem.search("teal", user_id="u", tenant="acme")] == [a.id]
    assert [m.id for m in mem.list("u", tenant="globex")] == [b.id]
    assert mem.conversations("u", tenant="globex") == []
    for call in (
        lambda: mem.get(a.id, tenant="globex"),
        lambda: mem.update(a.id, "hijacked", tenant="globex"),
        lambda: mem.delete(a.id, tenant="globex"),
        lambda: mem.history(a.id, tenant="globex"),
        lambda: mem.conversation(conv.id, tenant="globex"),
        lambda: mem.messages(conv.id, tenant="globex"),
        lambda: mem.append(conv.id, "user", "injected", tenant="globex"),
        lambda: mem.delete_conversation(conv.id, tenant="globex"),
        lambda: mem.get(a.id),  # the default tenant is a tenant too
    ):
        with pytest.raises(NotFound):
            call()
    assert mem.get(a.id, tenant="acme").content == "Favourite colour is teal"
    assert [m.content for m in mem.messages(conv.id, tenant="acme")] == ["secret plan"]

    report = mem.erase_user("u", tenant="globex")
    assert (report.memories, report.conversations) == (1, 0)
    assert owned_counts(db, "acme", "u") == {
        "conversations": 1,
        "messages": 1,
        "memories": 1,
        "memory_history": 1,
    }
    assert mem.export_user("u", tenant="globex")["memories"] == []


# -- conversations ----------------------------------------------------------------------------
def test_conversation_append_and_last_n(db: engram.Engram, mem: MemoryService) -> None:
    conv = mem.create_conversation("u", title="Trip", metadata={"channel": "web"})
    assert (conv.title, conv.metadata, conv.user_id) == ("Trip", {"channel": "web"}, "u")
    roles = ["system", "user", "assistant", "tool", "user", "assistant"]
    sent = [mem.append(conv.id, r, f"message {i}") for i, r in enumerate(roles)]
    assert [m.id for m in sent] == sorted(m.id for m in sent)

    assert [m.content for m in mem.messages(conv.id)] == [f"message {i}" for i in range(6)]
    last = mem.messages(conv.id, last=2)
    assert [(m.role, m.content) for m in last] == [
        ("user", "message 4"),
        ("assistant", "message 5"),
    ]
    assert len(mem.messages(conv.id, last=100)) == 6
    assert mem.conversation(conv.id).updated_at >= conv.updated_at

    other = mem.create_conversation("u")
    mem.append(conv.id, "user", "back to the first one", metadata={"lang": "en"})
    assert [c.id for c in mem.conversations("u")] == [conv.id, other.id]  # most recent first
    assert mem.messages(conv.id, last=1)[0].metadata == {"lang": "en"}

    mem.delete_conversation(conv.id)
    with pytest.raises(ConversationNotFound):
        mem.messages(conv.id)
    with pytest.raises(ConversationNotFound):
        mem.append(conv.id, "user", "hello?")
    with pytest.raises(ConversationNotFound):
        mem.delete_conversation(conv.id)
    assert table_rows(
        db, "SELECT count(*) FROM messages WHERE conversation_id = ?", (conv.id,)
    ) == [(0,)]
    assert [c.id for c in mem.conversations("u")] == [other.id]


# -- whole users ------------------------------------------------------------------------------
def populate(mem: MemoryService, user_id: str, tenant: str = "default") -> None:
    conv = mem.create_conversation(user_id, title=f"chat of {user_id}", tenant=tenant)
    for role, text in [("user", f"I am {user_id}"), ("assistant", f"Hello {user_id}")]:
        mem.append(conv.id, role, text, tenant=tenant)
    kept = mem.add(f"{user_id} lives in Lyon", user_id=user_id, source=conv.id, tenant=tenant)
    mem.update(kept.id, f"{user_id} lives in Paris", tenant=tenant)
    gone = mem.add(f"{user_id} owns a red bicycle", user_id=user_id, tenant=tenant)
    mem.delete(gone.id, tenant=tenant)
    mem.add(f"{user_id} plays chess", user_id=user_id, agent_id="coach", tenant=tenant)


def test_erase_user_removes_every_row_of_that_user_only(
    db: engram.Engram, mem: MemoryService
) -> None:
    populate(mem, "ann")
    populate(mem, "bob")
    populate(mem, "ann", tenant="other")
    before = owned_counts(db, "default", "ann")
    assert before == {"conversations": 1, "messages": 2, "memories": 3, "memory_history": 5}
    bob, other = owned_counts(db, "default", "bob"), owned_counts(db, "other", "ann")

    db.state.put(("user", "ann", "planner"), "plan", {"step": 1})
    db.state.put(("user", "ann"), "profile", {"city": "Lyon"})
    db.state.put(("user", "anna"), "profile", {"city": "Nice"})  # a neighbour, kept
    db.state.put(("user", "bob"), "profile", {"city": "Paris"})
    report = mem.erase_user("ann")
    assert report.to_dict() == {**before, "state": 2}
    assert db.state.items(("user", "ann")) == []
    assert [i.key for i in db.state.items(("user",))] == ["profile", "profile"]  # anna, bob
    assert owned_counts(db, "default", "ann") == dict.fromkeys(USER_TABLES, 0)
    # No orphans anywhere: every remaining row belongs to bob or to the other tenant's ann.
    for table in USER_TABLES:
        total = table_rows(db, f"SELECT count(*) FROM {table}")[0][0]
        assert total == bob[table] + other[table], table
    assert not any(
        "ann" in text
        for (text,) in table_rows(db, "SELECT content FROM memories WHERE tenant = 'default'")
    )
    assert mem.list("ann") == [] and mem.conversations("ann") == []
    assert len(mem.list("bob")) == 2
    assert mem.erase_user("ann") == type(report)()  # erasing again finds nothing


def test_erase_user_leaves_no_bytes_behind(tmp_path: Path) -> None:
    """The erased text is gone from the database file and its WAL, not just unlinked."""
    with engram.open(tmp_path, embedding_model="hash") as db:
        db.memory.add("zanzibarsecret fact", user_id="u")
        conv = db.memory.create_conversation("u")
        db.memory.append(conv.id, "user", "quokkaconfidential message")
        db.memory.add("someone else", user_id="v")
        files = [f for f in tmp_path.rglob("*") if f.is_file()]
        assert any(b"zanzibarsecret" in f.read_bytes() for f in files)
        db.memory.erase_user("u")
        for f in tmp_path.rglob("*"):
            if f.is_file():
                data = f.read_bytes()
                assert b"zanzibarsecret" not in data and b"quokkaconfidential" not in data, f


def test_export_user_round_trips_content(db: engram.Engram, mem: MemoryService) -> None:
    populate(mem, "ann")
    populate(mem, "bob")
    db.state.put(("user", "ann", "planner"), "plan", {"step": 1})
    db.state.put(("user", "bob"), "profile", {"city": "Paris"})
    exported = json.loads(json.dumps(mem.export_user("ann")))
    assert (exported["tenant"], exported["user_id"]) == ("default", "ann")
    [item] = exported["state"]  # the user's agent state, not bob's
    assert (item["namespace"], item["key"], item["value"]) == (
        ["user", "ann", "planner"],
        "plan",
        {"step": 1},
    )

    [conv] = exported["conversations"]
    live = mem.conversations("ann")[0]
    assert conv["id"] == live.id and conv["title"] == "chat of ann"
    assert [m.to_dict() for m in mem.messages(live.id)] == conv["messages"]

    by_content = {m["content"]: m for m in exported["memories"]}
    assert set(by_content) == {"ann lives in Paris", "ann owns a red bicycle", "ann plays chess"}
    assert by_content["ann owns a red bicycle"]["deleted_at"] is not None
    assert by_content["ann plays chess"]["agent_id"] == "coach"
    assert by_content["ann lives in Paris"]["source"] == conv["id"]
    for record in mem.list("ann"):
        entry = by_content[record.content]
        assert entry["history"] == [e.to_dict() for e in mem.history(record.id)]
        assert {k: v for k, v in entry.items() if k != "history"} == {
            k: v for k, v in record.to_dict().items() if k != "deduplicated"
        }
    assert "bob" not in json.dumps(exported)
    assert "embedding" not in json.dumps(exported)


# -- store contract ---------------------------------------------------------------------------
