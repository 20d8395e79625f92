"""Conversation recall (``db.memory.recall``) on every backend, with the hash embedder: what is
indexed and when, filters, context, isolation, deletion, and several processes at once."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import engram
from engram.errors import CollectionNotFound, InvalidInput
from engram.memory.types import recall_collection


def _chat(db: engram.Engram, user: str = "ana") -> tuple[str, str]:
    m = db.memory
    trip = m.create_conversation(user, title="trip")
    m.append(trip.id, "user", "We fly to Lisbon on the 14th.", created_at="2026-03-02T09:00:00Z")
    m.append(trip.id, "assistant", "Noted, have a good trip.", created_at="2026-03-02T09:00:05Z")
    m.append(trip.id, "user", "Book a table at the fado bar.", created_at="2026-03-02T09:01:00Z")
    pets = m.create_conversation(user, title="pets")
    m.append(pets.id, "user", "My cat Pixel hates the vet.", created_at="2026-04-10T18:00:00Z")
    m.append(pets.id, "assistant", "Poor Pixel. Is the vet far?", created_at="2026-04-10T18:00:09Z")
    m.append(pets.id, "user", "The vet is Dr Okafor in Leeds.", created_at="2026-04-10T18:01:00Z")
    return trip.id, pets.id


def test_recall_finds_past_turns_with_their_context(db: engram.Engram) -> None:
    trip, pets = _chat(db)
    hits = db.memory.recall("Lisbon flight", user_id="ana", k=2, context=1)
    top = hits[0]
    assert top.message.content == "We fly to Lisbon on the 14th." and top.conversation_id == trip
    assert [m.content for m in top.context][:2] == [
        "We fly to Lisbon on the 14th.",
        "Noted, have a good trip.",
    ]
    assert top.explain["keyword"]["rank"] == 1 and top.explain["vector"] is not None
    assert top.message.created_at.startswith("2026-03-02T09:00:00")
    data = top.to_dict()
    assert data["conversation_id"] == trip and data["message"]["id"] == top.message.id
    assert [m["id"] for m in data["context"]] == [m.id for m in top.context]
    assert db.memory.recall("Lisbon", user_id="ana", k=1, context=0)[0].context == [top.message]


def test_recall_filters_by_conversation_role_speaker_and_time(db: engram.Engram) -> None:
    trip, pets = _chat(db)
    vet = db.memory.recall("vet", user_id="ana", k=10)
    assert {h.conversation_id for h in vet} >= {pets}
    only_trip = db.memory.recall("vet Lisbon", user_id="ana", conversation_id=trip, k=10)
    assert only_trip and {h.conversation_id for h in only_trip} == {trip}
    users = db.memory.recall("vet Pixel Lisbon", user_id="ana", role="assistant", k=10)
    assert users and {h.message.role for h in users} == {"assistant"}
    april = db.memory.recall("vet Lisbon", user_id="ana", since="2026-04-01", k=10)
    assert april and all(h.message.created_at >= "2026-04" for h in april)
    march = db.memory.recall("vet Lisbon", user_id="ana", until="2026-04-01T00:00:00Z", k=10)
    assert march and all(h.message.created_at < "2026-04" for h in march)
    c = db.memory.create_conversation("ana")
    db.memory.append(c.id, "user", "Lisbon again", speaker="Ben")
    ben = db.memory.recall("Lisbon", user_id="ana", speaker="Ben", k=10)
    assert [h.message.speaker for h in ben] == ["Ben"]
    with pytest.raises(InvalidInput):
        db.memory.recall("x", user_id="ana", role="boss")
    with pytest.raises(InvalidInput, match="ISO 8601"):
        db.memory.recall("x", user_id="ana", since="last week")
    with pytest.raises(InvalidInput):
        db.memory.recall("x", user_id="ana", context=99)


def test_recall_reaches_only_the_users_own_messages(db: engram.Engram) -> None:
    _chat(db, "ana")
    other = db.memory.create_conversation("bob")
    db.memory.append(other.id, "user", "Bob also flies to Lisbon.")
    assert {h.message.content for h in db.memory.recall("Lisbon", user_id="bob", k=10)} == {
        "Bob also flies to Lisbon."
    }
    assert db.memory.recall("Lisbon", user_id="nobody") == []
    assert db.memory.recall("Lisbon", user_id="ana", tenant="elsewhere") == []
    # The indexes are engram's own collections: not listed, not searchable as collections.
    assert db.collections() == []
    with pytest.raises(CollectionNotFound):
        db.search("Lisbon", collection=recall_collection("bob"))
    with pytest.raises(InvalidInput):
        db.add([{"id": "x", "text": "y"}], collection="recall/bob")


def test_deleted_and_erased_messages_leave_recall(db: engram.Engram) -> None:
    trip, pets = _chat(db)
    db.memory.delete_conversation(trip)
    assert all(h.conversation_id == pets for h in db.memory.recall("Lisbon vet", user_id="ana"))
    db.memory.erase_user("ana")
    assert db.memory.recall("vet", user_id="ana") == []
    with pytest.raises(CollectionNotFound):
        db.store.get_collection(recall_collection("ana"), counts=False)


def test_messages_written_without_indexing_are_caught_up(db: engram.Engram) -> None:
    """An import (or a crash between writing and indexing) leaves messages unmarked: the
    next recall indexes them."""
    c = db.memory.create_conversation("ana")
    from engram.memory.types import MessageWrite

    db.store.append_messages(c.id, tenant="default", messages=[MessageWrite("user", "quokka")])
    assert [h.message.content for h in db.memory.recall("quokka", user_id="ana")] == ["quokka"]
    assert db.store.unindexed_messages(tenant="default", user_id="ana", limit=5) == []


def test_append_refuses_bad_messages_and_writes_nothing(db: engram.Engram) -> None:
    c = db.memory.create_conversation("ana")
    for bad in (
        {"role": "user", "content": "x", "created_at": "yesterday"},
        {"role": "user", "content": "x", "colour": "red"},
        {"role": "user", "content": "x", "speaker": ""},
        {"role": "boss", "content": "x"},
    ):
        with pytest.raises(InvalidInput):
            db.memory.append_many(c.id, [{"role": "user", "content": "fine"}, bad])
    assert db.memory.messages(c.id) == []


def test_recall_across_processes_on_one_data_directory(tmp_path: Path) -> None:
    """Two processes append to one user's conversations at once; each then recalls every
    message, whichever process indexed it."""
    script = textwrap.dedent(
        """
        import json, sys, engram
        db = engram.open(sys.argv[1], embedding_model="hash")
        tag = sys.argv[2]
        c = db.memory.create_conversation("ana")
        for i in range(25):
            db.memory.append(c.id, "user", f"note {tag} number{i} zebra")
        db.close()
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path), tag]) for tag in ("a", "b")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    check = textwrap.dedent(
        """
        import json, sys, engram
        db = engram.open(sys.argv[1], embedding_model="hash")
        hits = db.memory.recall("zebra", user_id="ana", k=100, context=0)
        print(json.dumps(sorted(h.message.content for h in hits)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", check, str(tmp_path)], capture_output=True, text=True, check=True
    )
    found = json.loads(out.stdout)
    assert len(found) == 50 and len(set(found)) == 50


def test_eval_scores_conversation_recall_from_the_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from engram.cli.eval import TURN_REPRESENTATIONS
    from engram.cli.main import cli
    from engram.memory.recall import REPRESENTATIONS

    assert TURN_REPRESENTATIONS == REPRESENTATIONS
    dataset = {
        "name": "tiny",
        "conversations": [
            {
                "id": "c1",
                "user_id": "ana",
                "language": "en",
                "sessions": [
                    {
                        "id": "s1",
                        "timestamp": "2026-01-05T10:00:00+00:00",
                        "turns": [
                            {"id": "t1", "role": "user", "speaker": "Ana", "text": "I adopted a dog named Biscuit."},
                            {"id": "t2", "role": "assistant", "text": "Congratulations!"},
                        ],
                    },
                    {
                        "id": "s2",
                        "timestamp": "2026-02-05T10:00:00+00:00",
                        "turns": [
                            {"id": "t3", "role": "user", "speaker": "Ana", "text": "I moved to Porto for work."},
                            {"id": "t4", "role": "assistant", "text": "Exciting."},
                        ],
                    },
                ],
            }
        ],
        "questions": [
            {"id": "q1", "conversation": "c1", "question": "What is the dog called?", "evidence": ["t1"], "category": "single-hop"},
            {"id": "q2", "conversation": "c1", "question": "Where does Ana live?", "evidence": ["t3"], "category": "update"},
            {"id": "q3", "conversation": "c1", "question": "Does Ana have a cat?", "evidence": [], "category": "adversarial-none"},
        ],
    }  # fmt: skip
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(dataset))
    data = tmp_path / "data"
    res = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(data),
            "--model",
            "hash",
            "eval",
            str(path),
            "--mode",
            "keyword",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    (out,) = json.loads(res.stdout)
    assert out["questions"] == 2 and out["representation"] == "context"
    assert out["metrics"]["recall@10"] == 1.0 and set(out["by_category"]) == {
        "single-hop",
        "update",
    }
    assert not data.exists()  # a scratch database: the data directory was not touched
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({**dataset, "questions": [{**dataset["questions"][0], "evidence": ["nope"]}]})
    )
    res = CliRunner().invoke(cli, ["--data-dir", str(data), "--model", "hash", "eval", str(bad)])
    assert res.exit_code == 1 and "evidence" in res.output


def test_a_large_recall_index_gets_its_own_vector_index_on_postgres(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users' recall indexes start without an HNSW index (one per user would slow every
    write); a large one gets it, built concurrently, and searches use it once valid."""
    import time

    import psycopg

    from engram.search.ann import HnswParams
    from engram.store.postgres import store as pg

    monkeypatch.setattr(pg, "RECALL_INDEX_AT", 20)
    db = engram.open(tmp_path, embedding_model="hash", database_url=pg_url)
    db.store.hnsw = HnswParams(exact_below=10)  # steer to the index from 10 chunks
    conv = db.memory.create_conversation("ana")
    db.memory.append_many(
        conv.id,
        [{"role": "user", "content": f"note number{i} about topic{i % 5}"} for i in range(15)],
    )
    cid = db.store.get_collection(recall_collection("ana"), counts=False).id
    with psycopg.connect(pg_url, autocommit=True) as conn:
        present = "SELECT i.indisvalid FROM pg_class r JOIN pg_index i ON i.indexrelid = r.oid WHERE r.relname = %s"
        assert conn.execute(present, (f"chunks_vec_{cid}",)).fetchone() is None
        db.memory.append_many(
            conv.id,
            [{"role": "user", "content": f"later note{i} about topic{i % 5}"} for i in range(10)],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = conn.execute(present, (f"chunks_vec_{cid}",)).fetchone()
            if row and row[0]:
                break
            time.sleep(0.1)
        assert row and row[0], "the index was not built"
    hits = db.memory.recall("later note3", user_id="ana", k=3, mode="vector")
    assert hits and hits[0].message.content == "later note3 about topic3"
    db.memory.erase_user("ana")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute(present, (f"chunks_vec_{cid}",)).fetchone() is None
    db.close()


def test_recall_from_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from engram.cli.main import cli

    with engram.open(tmp_path, embedding_model="hash") as db:
        _chat(db)
    base = ["--data-dir", str(tmp_path), "--model", "hash", "recall"]
    res = CliRunner().invoke(cli, [*base, "Lisbon", "--user", "ana", "-k", "1"])
    assert res.exit_code == 0, res.output
    assert "> user: We fly to Lisbon on the 14th." in res.output
    assert "  assistant: Noted, have a good trip." in res.output  # the turn after it
    res = CliRunner().invoke(
        cli, [*base, "vet", "--user", "ana", "--since", "2026-04-01", "--json"]
    )
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert lines and all(h["message"]["created_at"] >= "2026-04" for h in lines)
    res = CliRunner().invoke(cli, [*base, "vet", "--user", "ana", "--since", "soon"])
    assert res.exit_code == 1 and "ISO 8601" in res.output
    res = CliRunner().invoke(cli, [*base, "vet", "--user", "nobody"])
    assert res.exit_code == 0 and "Nothing found." in res.output


def test_the_recall_index_is_rebuilt_for_a_new_model(tmp_path: Path) -> None:
    """Recall is derived data: after the embedding model changes, the index is rebuilt from
    the messages instead of refusing the new model's queries."""
    with engram.open(tmp_path, embedding_model="hash-64") as db:
        _chat(db)
        assert db.memory.recall("Lisbon", user_id="ana", k=1)[0].message.content.startswith(
            "We fly"
        )
    with engram.open(tmp_path, embedding_model="hash-32") as db:
        hits = db.memory.recall("Lisbon", user_id="ana", k=1)
        assert hits[0].message.content == "We fly to Lisbon on the 14th."
        assert db.store.get_collection(recall_collection("ana"), counts=False).model_id == "hash-32"
