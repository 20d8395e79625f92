"""engram.integrations.langgraph_checkpoint: EngramSaver as LangGraph's checkpointer. The
contract of every method on both backends (sync and async), then a real graph with a
human-in-the-loop interrupt run by one process and resumed by another, with its history and
a fork from an earlier checkpoint, and two processes writing one thread at once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.base import (  # noqa: E402
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    empty_checkpoint,
)
from langgraph.checkpoint.base.id import uuid6  # noqa: E402
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT  # noqa: E402

import engram  # noqa: E402
from engram.integrations.langgraph import EngramSaver  # noqa: E402
from engram.integrations.langgraph import EngramSaver as Exported  # noqa: E402
from engram.integrations.langgraph_checkpoint import EngramSaver as Saver  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "postgres" else None


def _open(path: Path, url: str | None) -> engram.Engram:
    return engram.open(path, embedding_model="hash", database_url=url)


@pytest.fixture
def db(tmp_path: Path, url: str | None) -> Iterator[engram.Engram]:
    with _open(tmp_path / "data", url) as database:
        yield database


@pytest.fixture
def saver(db: engram.Engram) -> EngramSaver:
    return EngramSaver(db, tenant="acme")


def _config(thread: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def _checkpoint(values: dict[str, Any] | None = None, **versions: Any) -> Checkpoint:
    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=-1))
    cp["channel_values"] = dict(values or {})
    cp["channel_versions"] = dict(versions)
    return cp


def _meta(**fields: Any) -> CheckpointMetadata:
    return {"source": "loop", "step": 0, "parents": {}, **fields}  # type: ignore[typeddict-item]


def _chain(saver: EngramSaver, thread: str, n: int, ns: str = "") -> list[Any]:
    """n checkpoints of one thread, each the child of the one before; their configs."""
    configs: list[Any] = []
    parent = _config(thread, ns)
    for step in range(n):
        source = "input" if step % 2 == 0 else "loop"
        cp = _checkpoint(
            {"n": step}, n=saver.get_next_version(None if step == 0 else str(step), None)
        )
        parent = saver.put(
            parent, cp, _meta(source=source, step=step), {"n": cp["channel_versions"]["n"]}
        )
        configs.append(parent)
    return configs


# -- the contract, sync ---------------------------------------------------------------------------
def test_exported_from_the_langgraph_module() -> None:
    assert Exported is Saver


def test_put_and_get_tuple(saver: EngramSaver) -> None:
    assert saver.get_tuple(_config("t")) is None
    cp = _checkpoint({"msg": "hello", "n": 42, "obj": {"nested": [1, 2]}}, msg=1, n=1, obj=1)
    cp["versions_seen"] = {"node": {"msg": 1}}
    stored = saver.put(_config("t"), cp, _meta(custom="x", user={"a": [1, {"b": True}]}),
                       {"msg": 1, "n": 1, "obj": 1})  # fmt: skip
    assert stored == _config("t", "", cp["id"])
    for config in (stored, _config("t")):  # by id, and the latest
        got = saver.get_tuple(config)
        assert got is not None and got.config == stored and got.parent_config is None
        assert got.checkpoint["id"] == cp["id"] and got.checkpoint["ts"] == cp["ts"]
        assert got.checkpoint["channel_values"] == {
            "msg": "hello",
            "n": 42,
            "obj": {"nested": [1, 2]},
        }
        assert got.checkpoint["channel_versions"] == {"msg": 1, "n": 1, "obj": 1}
        assert got.checkpoint["versions_seen"] == {"node": {"msg": 1}}
        assert got.metadata == {"source": "loop", "step": 0, "parents": {}, "custom": "x",
                                "user": {"a": [1, {"b": True}]}}  # fmt: skip
        assert got.pending_writes == []
    assert saver.get_tuple(_config("t", "", "no-such-id")) is None
    assert saver.get_tuple(_config("t", "child")) is None  # another namespace
    # the run's config joins the metadata (str/int/float/bool values, not LangGraph's own keys)
    cfg = {"configurable": {"thread_id": "m", "checkpoint_ns": "", "run_tag": "r1", "__x": 1},
           "metadata": {"score": 3}}  # fmt: skip
    saver.put(cfg, _checkpoint(), _meta(), {})  # type: ignore[arg-type]
    got = saver.get_tuple(_config("m"))
    assert got is not None and got.metadata["run_tag"] == "r1" and got.metadata["score"] == 3  # type: ignore[typeddict-item]
    assert "__x" not in got.metadata and "thread_id" not in got.metadata


def test_blobs_are_stored_once_per_version(saver: EngramSaver, db: engram.Engram) -> None:
    first = saver.put(
        _config("t"), _checkpoint({"a": "v1", "b": "v2"}, a=1, b=1), _meta(), {"a": 1, "b": 1}
    )
    # only "a" changed; "b" is read at its old version; "c" is new without a value
    second = saver.put(first, _checkpoint({"a": "v1b", "b": "v2"}, a=2, b=1, c=1), _meta(step=1),
                       {"a": 2, "c": 1})  # fmt: skip
    third = saver.put(
        second, _checkpoint({"a": "v1c"}, a=3), _meta(step=2), {"a": 3}
    )  # "b" dropped
    values = {
        n: saver.get_tuple(c).checkpoint["channel_values"]  # type: ignore[union-attr]
        for n, c in (("1", first), ("2", second), ("3", third))
    }
    assert values == {"1": {"a": "v1", "b": "v2"}, "2": {"a": "v1b", "b": "v2"}, "3": {"a": "v1c"}}
    got = saver.get_tuple(second)
    assert got is not None and got.parent_config == first
    rows = _count(db, "checkpoint_blobs")
    assert rows == 5  # a×3, b×1, c (empty) ×1
    saver.put(first, _checkpoint({"a": "v1b", "b": "v2"}, a=2, b=1), _meta(), {"a": 2})
    assert _count(db, "checkpoint_blobs") == 5  # an existing version is not written again


def _count(db: engram.Engram, table: str) -> int:
    from engram.store.session import ALL_TENANTS

    with db.store._session(ALL_TENANTS) as s:  # type: ignore[attr-defined]  # noqa: SLF001
        row = s.row(f"SELECT count(*) FROM {table}")
    return int(row[0]) if row else 0


def test_list_newest_first_with_filter_before_and_limit(saver: EngramSaver) -> None:
    configs = _chain(saver, "t", 4)
    ids = [c["configurable"]["checkpoint_id"] for c in configs]
    _chain(saver, "other", 2)
    saver.put(_config("t", "child:1"), _checkpoint(), _meta(step=9), {})

    def listed(config: Any = None, **kwargs: Any) -> list[str]:
        return [t.checkpoint["id"] for t in saver.list(config, **kwargs)]

    assert listed(_config("t")) == [*reversed(ids)]
    every = [t for t in saver.list({"configurable": {"thread_id": "t"}})]  # every namespace
    assert len(every) == 5 and {t.config["configurable"]["checkpoint_ns"] for t in every} == {
        "",
        "child:1",
    }
    assert len(listed(None)) == 7  # every thread of the tenant
    assert listed(_config("t"), filter={"source": "input"}) == [ids[2], ids[0]]
    assert listed(_config("t"), filter={"source": "input", "step": 2}) == [ids[2]]
    assert listed(_config("t"), filter={"step": 1}) == [ids[1]]
    assert listed(_config("t"), filter={"source": "update", "step": 99}) == []
    assert listed(_config("t"), filter={"parents": {}}) == [*reversed(ids)]  # an object, exactly
    assert listed(_config("t"), filter={"missing": None}) == [*reversed(ids)]  # absent reads None
    assert listed(_config("t"), before=configs[2]) == [ids[1], ids[0]]
    assert listed(_config("t"), before=configs[3], limit=1) == [ids[2]]
    assert listed(_config("t"), limit=2) == [ids[3], ids[2]]
    assert listed(_config("t", "", ids[1])) == [ids[1]]
    assert listed(_config("nobody")) == []
    tup = next(saver.list(_config("t"), limit=1))
    assert isinstance(tup, CheckpointTuple) and tup.parent_config == configs[2]
    assert tup.checkpoint["channel_values"] == {"n": 3}


def test_list_orders_by_checkpoint_time_then_id(saver: EngramSaver) -> None:
    older = _checkpoint()
    older["id"], older["ts"] = "z-older", "2026-01-01T00:00:00+00:00"
    newer = _checkpoint()
    newer["id"], newer["ts"] = "a-newer", "2026-01-01T01:00:01+01:00"  # one second later, in UTC
    saver.put(saver.put(_config("t"), older, _meta(), {}), newer, _meta(step=1), {})
    assert [t.checkpoint["id"] for t in saver.list(_config("t"))] == ["a-newer", "z-older"]
    assert [
        t.checkpoint["id"] for t in saver.list(_config("t"), before=_config("t", "", "a-newer"))
    ] == ["z-older"]
    latest = saver.get_tuple(_config("t"))
    assert latest is not None and latest.checkpoint["id"] == "a-newer"


def test_put_writes_idempotent_special_channels_replaced(saver: EngramSaver) -> None:
    stored = saver.put(_config("t"), _checkpoint(), _meta(), {})
    saver.put_writes(stored, [("ch1", "v1"), ("ch2", {"data": 123})], "task-b", task_path="b")
    saver.put_writes(stored, [("ch1", "v1-again")], "task-b", task_path="b")  # (task, 0) is kept
    saver.put_writes(stored, [("ch", "from-a")], "task-a", task_path="a")
    saver.put_writes(
        stored, [(ERROR, "boom"), (INTERRUPT, {"reason": "human"})], "task-b", task_path="b"
    )
    saver.put_writes(stored, [(ERROR, "boom again")], "task-b", task_path="b")  # special: replaced
    got = saver.get_tuple(stored)
    assert got is not None
    # LangGraph's order: task path, task id, index (the special channels' indexes are negative)
    assert got.pending_writes == [
        ("task-a", "ch", "from-a"),
        ("task-b", INTERRUPT, {"reason": "human"}),
        ("task-b", ERROR, "boom again"),
        ("task-b", "ch1", "v1"),
        ("task-b", "ch2", {"data": 123}),
    ]
    later = saver.put(stored, _checkpoint(), _meta(step=1), {})
    assert saver.get_tuple(later).pending_writes == []  # type: ignore[union-attr]
    assert len(next(saver.list(_config("t"), before=later)).pending_writes or []) == 5
    child = saver.put(_config("t", "child:1"), _checkpoint(), _meta(), {})
    saver.put_writes(child, [("ch", "child")], "task-c")
    assert saver.get_tuple(child).pending_writes == [("task-c", "ch", "child")]  # type: ignore[union-attr]


def test_delete_thread_tenants_and_clear(saver: EngramSaver, db: engram.Engram) -> None:
    for thread in ("t", "u"):
        configs = _chain(saver, thread, 3)
        saver.put_writes(configs[-1], [("ch", 1)], "task")
        saver.put(_config(thread, "child:1"), _checkpoint({"x": 1}, x=1), _meta(), {"x": 1})
    other = EngramSaver(db, tenant="other")
    assert other.get_tuple(_config("t")) is None and list(other.list(None)) == []
    other_cfg = _chain(other, "t", 2)
    saver.delete_thread("t")
    assert (
        saver.get_tuple(_config("t")) is None and saver.get_tuple(_config("t", "child:1")) is None
    )
    assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == {"u"}
    assert other.get_tuple(other_cfg[-1]) is not None  # the other tenant's thread "t" stays
    assert saver.clear() == 4
    assert list(saver.list(None)) == [] and len(list(other.list(None))) == 2
    other.delete_thread("t")
    assert all(_count(db, t) == 0 for t in ("checkpoints", "checkpoint_blobs", "checkpoint_writes"))


def test_erasing_a_user_deletes_their_threads(db: engram.Engram) -> None:
    saver = EngramSaver(db, tenant="acme")
    mine = {"configurable": {"thread_id": "mine", "checkpoint_ns": "", "user_id": "u1"}}
    first = saver.put(mine, _checkpoint({"a": 1}, a=1), _meta(), {"a": 1})
    saver.put(first, _checkpoint({"a": 2}, a=2), _meta(step=1), {"a": 2})  # this one names no user
    saver.put_writes(first, [("a", 3)], "task")
    EngramSaver(db, tenant="acme", user_id="u1").put(_config("bound"), _checkpoint(), _meta(), {})
    EngramSaver(db, tenant="acme", user_id="u2").put(_config("theirs"), _checkpoint(), _meta(), {})
    EngramSaver(db, tenant="other", user_id="u1").put(_config("mine"), _checkpoint(), _meta(), {})
    db.memory.erase_user("u1", tenant="acme")
    assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == {"theirs"}
    assert _count(db, "checkpoint_writes") == 0 and _count(db, "checkpoint_blobs") == 0
    assert EngramSaver(db, tenant="other").get_tuple(_config("mine")) is not None


def test_next_version_sorts_after_the_current_one(saver: EngramSaver) -> None:
    one = saver.get_next_version(None, None)
    two = saver.get_next_version(one, None)
    assert one.startswith("0" * 31 + "1.") and two.startswith("0" * 31 + "2.") and two > one
    assert saver.get_next_version(7, None).startswith("0" * 31 + "8.")  # type: ignore[arg-type]


# -- the contract, async --------------------------------------------------------------------------
def test_async_methods(saver: EngramSaver) -> None:
    async def run() -> None:
        assert await saver.aget_tuple(_config("t")) is None
        first = await saver.aput(_config("t"), _checkpoint({"a": 1}, a=1), _meta(), {"a": 1})
        second = await saver.aput(
            first, _checkpoint({"a": 2}, a=2), _meta(step=1, source="input"), {"a": 2}
        )
        await saver.aput_writes(second, [("a", 3)], "task")
        got = await saver.aget_tuple(_config("t"))
        assert got is not None and got.config == second and got.pending_writes == [("task", "a", 3)]
        assert got.checkpoint["channel_values"] == {"a": 2}
        listed = [t.checkpoint["id"] async for t in saver.alist(_config("t"))]
        assert listed == [
            second["configurable"]["checkpoint_id"],
            first["configurable"]["checkpoint_id"],
        ]
        assert [t.config async for t in saver.alist(_config("t"), filter={"source": "input"})] == [
            second
        ]
        assert [t.config async for t in saver.alist(None, before=second, limit=5)] == [first]
        await saver.adelete_thread("t")
        assert await saver.aget_tuple(_config("t")) is None

    asyncio.run(run())


# -- a real graph, across processes ---------------------------------------------------------------
GRAPH = """
import asyncio, json, sys
from typing import TypedDict

import engram
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from engram.integrations.langgraph import EngramSaver

data, url, phase, mode = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4]


class Ticket(TypedDict, total=False):
    request: str
    draft: str
    outcome: str


def write_draft(state: Ticket) -> Ticket:
    return {"draft": f"reply to {state['request']}"}


def review(state: Ticket) -> Ticket:
    decision = interrupt({"question": "send this reply?", "draft": state["draft"]})
    return {"outcome": f"{decision}: {state['draft']}"}


builder = StateGraph(Ticket)
builder.add_node("write_draft", write_draft)
builder.add_node("review", review)
builder.add_edge(START, "write_draft")
builder.add_edge("write_draft", "review")
builder.add_edge("review", END)
thread = {"configurable": {"thread_id": "ticket-7", "user_id": "u1"}}


def history(graph):
    return [[h.metadata["step"], list(h.next), h.values] for h in graph.get_state_history(thread)]


async def ahistory(graph):
    return [[h.metadata["step"], list(h.next), h.values] async for h in graph.aget_state_history(thread)]


def run_sync(graph):
    if phase == "start":
        out = graph.invoke({"request": "a refund"}, thread)
        return {"interrupt": out["__interrupt__"][0].value, "next": list(graph.get_state(thread).next)}
    out = graph.invoke(Command(resume="approved"), thread)
    done = history(graph)
    # time travel: from the checkpoint before the draft, with another request, a new branch
    before_draft = next(h for h in graph.get_state_history(thread) if h.next == ("write_draft",))
    fork = graph.update_state(before_draft.config, {"request": "an exchange"})
    paused = graph.invoke(None, fork)
    forked = graph.invoke(Command(resume="rejected"), thread)
    return {"outcome": out["outcome"], "history": done, "paused": paused["__interrupt__"][0].value,
            "forked": forked["outcome"], "after": history(graph)}


async def run_async(graph):
    if phase == "start":
        chunks = [c async for c in graph.astream({"request": "a refund"}, thread, stream_mode="updates")]
        state = await graph.aget_state(thread)
        return {"interrupt": chunks[-1]["__interrupt__"][0].value, "next": list(state.next)}
    out = await graph.ainvoke(Command(resume="approved"), thread)
    done = await ahistory(graph)
    before_draft = [h async for h in graph.aget_state_history(thread) if h.next == ("write_draft",)][0]
    fork = await graph.aupdate_state(before_draft.config, {"request": "an exchange"})
    paused = await graph.ainvoke(None, fork)
    forked = await graph.ainvoke(Command(resume="rejected"), thread)
    return {"outcome": out["outcome"], "history": done, "paused": paused["__interrupt__"][0].value,
            "forked": forked["outcome"], "after": await ahistory(graph)}


with engram.open(data, embedding_model="hash", database_url=url) as db:
    graph = builder.compile(checkpointer=EngramSaver(db, tenant="acme"))
    result = run_sync(graph) if mode == "sync" else asyncio.run(run_async(graph))
print(json.dumps(result))
"""


def _run(script: Path, *args: str) -> Any:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_interrupt_in_one_process_resume_in_another(
    tmp_path: Path, url: str | None, mode: str
) -> None:
    script = tmp_path / "graph.py"
    script.write_text(textwrap.dedent(GRAPH), encoding="utf-8")
    data = str(tmp_path / "data")
    started = _run(script, data, url or "", "start", mode)
    assert started == {"interrupt": {"question": "send this reply?", "draft": "reply to a refund"},
                       "next": ["review"]}  # fmt: skip
    resumed = _run(script, data, url or "", "resume", mode)  # a new process, the same thread
    assert resumed["outcome"] == "approved: reply to a refund"
    assert [(step, nxt) for step, nxt, _ in resumed["history"]] == [
        (2, []), (1, ["review"]), (0, ["write_draft"]), (-1, ["__start__"]),
    ]  # fmt: skip
    assert resumed["history"][1][2] == {"request": "a refund", "draft": "reply to a refund"}
    assert resumed["paused"] == {"question": "send this reply?", "draft": "reply to an exchange"}
    assert resumed["forked"] == "rejected: reply to an exchange"
    after = resumed["after"]
    assert after[0][2]["outcome"] == "rejected: reply to an exchange"
    # the first branch is still in the thread's history, after the fork's checkpoints
    assert any(v.get("outcome") == "approved: reply to a refund" for _, _, v in after)
    assert len(after) == len(resumed["history"]) + 3  # the update, the draft (paused), the outcome
    with _open(tmp_path / "data", url) as db:
        db.memory.erase_user("u1", tenant="acme")  # the run's configurable user_id
        assert list(EngramSaver(db, tenant="acme").list(None)) == []


WRITER = """
import sys
from typing import Annotated, TypedDict
import operator

import engram
from langgraph.graph import END, START, StateGraph
from engram.integrations.langgraph import EngramSaver

data, url, name = sys.argv[1], sys.argv[2] or None, sys.argv[3]


class Count(TypedDict):
    seen: Annotated[list, operator.add]


builder = StateGraph(Count)
builder.add_node("step", lambda state: {"seen": [name]})
builder.add_edge(START, "step")
builder.add_edge("step", END)
with engram.open(data, embedding_model="hash", database_url=url) as db:
    graph = builder.compile(checkpointer=EngramSaver(db))
    for _ in range(15):
        graph.invoke({"seen": []}, {"configurable": {"thread_id": "shared"}})
print("ok")
"""


def test_two_processes_writing_one_thread(tmp_path: Path, url: str | None) -> None:
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER), encoding="utf-8")
    data = str(tmp_path / "data")
    with _open(tmp_path / "data", url):
        pass  # created (and migrated) before the writers start
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), data, url or "", name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in ("a", "b")
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0 and out.strip() == "ok", err
    with _open(tmp_path / "data", url) as db:
        saver = EngramSaver(db)
        history = list(saver.list(_config("shared")))
        assert len(history) == 2 * 15 * 3  # input, step, end of each invoke
        assert len({t.checkpoint["id"] for t in history}) == len(history)
        for tup in history:  # every checkpoint reads back whole, its parent is stored
            assert saver.get_tuple(tup.config) is not None
            if tup.parent_config:
                assert saver.get_tuple(tup.parent_config) is not None
        seen = history[0].checkpoint["channel_values"]["seen"]
        # Two runs on one thread at once are not serialised by LangGraph: the later
        # checkpoint wins, so the state holds between 1 and 30 names, all valid.
        assert set(seen) <= {"a", "b"} and 1 <= len(seen) <= 30


# -- the documented example -----------------------------------------------------------------------
def test_the_documented_checkpointer_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (REPO / "docs" / "integrations.md").read_text(encoding="utf-8")
    section = text.split("## LangGraph", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2, (
        "docs/integrations.md: the LangGraph section has no checkpointer example"
    )
    code = blocks[1]
    assert "EngramSaver" in code and "EngramSaver" not in blocks[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ENGRAM_EMBEDDING_MODEL", "hash")
    namespace: dict[str, Any] = {"__name__": "example"}
    exec(compile(code, "docs/integrations.md", "exec"), namespace)  # noqa: S102
    assert os.path.isdir(tmp_path / "agent-data")


# -- LangGraph's own conformance suite ------------------------------------------------------------
def test_langgraphs_conformance_suite(tmp_path: Path, url: str | None) -> None:
    """langgraph-checkpoint-conformance (the checks LangGraph runs on its own savers): every
    base capability passes; a fresh saver (its own tenant) per capability suite."""
    conformance = pytest.importorskip("langgraph.checkpoint.conformance")
    tenants = iter(range(1000))

    with _open(tmp_path / "data", url) as database:

        @conformance.checkpointer_test(name="EngramSaver")
        async def engram_saver() -> Any:
            yield EngramSaver(database, tenant=f"conformance-{next(tenants)}")

        report = asyncio.run(conformance.validate(engram_saver))
    report.print_report()
    assert report.passed_all_base(), json.dumps(report.to_dict(), indent=1)[:4000]
