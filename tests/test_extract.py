"""Memories extracted from conversations (engram.memory.extract) by a scripted local server
speaking the OpenAI protocol: add, update and delete decisions with their provenance in the
history, off by default, the HTTP path through the server's job worker, and a retry that
applies a saved plan once without asking the model again."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_llms import FakeServer, completion

import engram
from engram.config import Settings
from engram.errors import InvalidInput
from engram.jobs.queue import EXTRACT_MEMORIES
from engram.jobs.worker import JobWorker
from engram.memory import extract
from engram.server.app import create_app


@pytest.fixture
def model() -> Iterator[FakeServer]:
    with FakeServer("openai") as server:
        yield server


def plan(*operations: dict[str, Any]) -> Any:
    return completion(json.dumps({"operations": list(operations)}))


@pytest.fixture(params=["sqlite", "postgres"])
def db(
    request: pytest.FixtureRequest, tmp_path: Path, model: FakeServer
) -> Iterator[engram.Engram]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    settings = Settings.build(
        data_dir=tmp_path, embedding_model="hash", database_url=url,
        llm=f"vllm:test-model@{model.base_url}", llm_retries=0, llm_timeout=5,
    )  # fmt: skip
    with engram.open(settings=settings) as database:
        yield database


@pytest.fixture
def worker(db: engram.Engram) -> Iterator[JobWorker]:
    jobs = JobWorker(db, retry_delay=0.01)
    yield jobs
    jobs.stop()  # closes the model it built


def _jobs(db: engram.Engram) -> list[Any]:
    return [j for j in db.store.list_jobs(tenant="default") if j.kind == EXTRACT_MEMORIES]


def test_extraction_adds_updates_and_deletes_with_provenance(
    db: engram.Engram, model: FakeServer, worker: JobWorker
) -> None:
    conv = db.memory.create_conversation("ann", extract_memories=True)
    said = db.memory.append(conv.id, "user", "My sister Nora just moved to Oslo.")
    db.memory.append(conv.id, "assistant", "Oslo is lovely in spring.")
    model.script = [
        plan(
            {"action": "add", "content": "Ann's sister is called Nora."},
            {"action": "add", "content": "Nora, Ann's sister, lives in Oslo."},
            {"action": "frobnicate", "content": "ignored"},
            {"action": "update", "id": "m9", "content": "ignored: no such memory shown"},
        )
    ]
    job = worker.run_once()
    assert job is not None and job.status == "succeeded", job
    assert job.result["results"] == ["added", "added"]
    memories = {m.content: m for m in db.memory.list("ann")}
    assert set(memories) == {"Ann's sister is called Nora.", "Nora, Ann's sister, lives in Oslo."}
    oslo = memories["Nora, Ann's sister, lives in Oslo."]
    source = f"conversation:{conv.id}#{said.id}"
    assert oslo.source == source
    assert [(e.event, e.source) for e in db.memory.history(oslo.id)] == [("add", source)]
    # The model saw the new message and, on the next turn, the memories it may change.
    prompt = model.requests[-1].body["messages"]
    assert "My sister Nora just moved to Oslo." in prompt[-1]["content"]

    moved = db.memory.append(
        conv.id, "user", "Update: Nora left Oslo for Bergen. I never had a cat."
    )
    cat = db.memory.add("Ann has a cat.", user_id="ann")
    model.script = [
        completion(
            "Here you go:\n```json\n"
            + json.dumps(
                {
                    "operations": [
                        {"action": "update", "id": "m1", "content": "Nora, Ann's sister, lives in Bergen."},
                        {"action": "delete", "id": "m2"},
                    ]
                }
            )
            + "\n```"
        )
    ]  # fmt: skip
    shown = None

    def remember_prompt() -> None:
        nonlocal shown
        shown = model.requests[-1].body["messages"][0]["content"]

    job = worker.run_once()
    remember_prompt()
    assert job is not None and job.status == "succeeded", job
    assert shown is not None and "[m1]" in shown and "[m2]" in shown
    # m1/m2 are the related memories as the model saw them: check by effect.
    live = {m.content for m in db.memory.list("ann")}
    assert "Nora, Ann's sister, lives in Bergen." in live
    assert len(live) == 2
    changed_source = f"conversation:{conv.id}#{moved.id}"
    events = [
        e for m in db.memory.list("ann", include_deleted=True) for e in db.memory.history(m.id)
    ]
    assert {(e.event, e.source) for e in events if e.source == changed_source} == {
        ("update", changed_source),
        ("delete", changed_source),
    }
    del cat


def test_extraction_is_off_by_default_and_needs_user_messages(
    db: engram.Engram, model: FakeServer, worker: JobWorker
) -> None:
    plain = db.memory.create_conversation("ann")
    db.memory.append(plain.id, "user", "I like tea.")
    on = db.memory.create_conversation("ann", extract_memories=True, agent_id="coach")
    assert on.metadata == {"extract_memories": True, "agent_id": "coach"}
    db.memory.append(on.id, "assistant", "Hello!")
    assert _jobs(db) == []
    db.memory.append(on.id, "user", "I run 10 km every Sunday.")
    assert len(_jobs(db)) == 1
    model.script = [plan({"action": "add", "content": "Ann runs 10 km every Sunday."})]
    assert worker.run_once().status == "succeeded"
    (memory,) = db.memory.list("ann")
    assert memory.agent_id == "coach"


def test_a_retry_applies_the_saved_plan_once_without_the_model(
    db: engram.Engram, model: FakeServer, worker: JobWorker
) -> None:
    conv = db.memory.create_conversation("ann", extract_memories=True)
    db.memory.append(conv.id, "user", "I adopted two cats, Miso and Tofu.")
    assert len(_jobs(db)) == 1
    job = db.store.claim_job()  # with its payload, as a worker gets it
    assert job is not None
    saved: list[dict[str, Any]] = []

    class Crash(Exception):
        pass

    def save_then_crash(progress: dict[str, Any]) -> None:
        saved.append(progress)
        if progress.get("applied") == 1:
            raise Crash

    model.script = [
        plan(
            {"action": "add", "content": "Ann has a cat called Miso."},
            {"action": "add", "content": "Ann has a cat called Tofu."},
        )
    ]
    llm = worker._model()
    with pytest.raises(Crash):
        extract.run(db.memory, llm, job, save_then_crash)
    assert len(model.requests) == 1 and len(db.memory.list("ann")) == 1
    # The retry reads the plan from the job's progress: no model, nothing applied twice.
    resumed = dataclasses.replace(job, progress=saved[-1])
    result = extract.run(db.memory, None, resumed, saved.append)
    assert result["results"] == ["added", "added"] and len(model.requests) == 1
    assert sorted(m.content for m in db.memory.list("ann")) == [
        "Ann has a cat called Miso.",
        "Ann has a cat called Tofu.",
    ]


def test_a_model_answer_that_is_not_json_fails_the_job_clearly(
    db: engram.Engram, model: FakeServer, worker: JobWorker
) -> None:
    conv = db.memory.create_conversation("ann", extract_memories=True)
    db.memory.append(conv.id, "user", "I like tea.")
    model.script = [completion("Sure! Ann likes tea.")]
    job = worker.run_once()
    assert job is not None and job.status == "failed" and "JSON" in (job.error or "")
    assert db.memory.list("ann") == []
    with pytest.raises(InvalidInput):
        extract._operations("no json here", {})


def test_the_server_extracts_in_the_background(tmp_path: Path, model: FakeServer) -> None:
    settings = Settings.build(
        data_dir=tmp_path, embedding_model="hash", auth="none",
        llm=f"vllm:test-model@{model.base_url}", llm_retries=0, llm_timeout=5,
    )  # fmt: skip
    model.script = [plan({"action": "add", "content": "The user is allergic to peanuts."})]
    with TestClient(create_app(settings)) as c:
        conv = c.post("/v1/conversations", json={"user_id": "u1", "extract_memories": True}).json()
        r = c.post(
            f"/v1/conversations/{conv['id']}/messages",
            json={"role": "user", "content": "Careful, I'm allergic to peanuts."},
        )
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            found = c.get("/v1/memories", params={"user_id": "u1"}).json()["data"]
            if found:
                break
            time.sleep(0.05)
        assert [m["content"] for m in found] == ["The user is allergic to peanuts."]
        history = c.get(f"/v1/memories/{found[0]['id']}/history").json()["data"]
        assert history[0]["source"].startswith(f"conversation:{conv['id']}#")
