"""API keys: hashed at rest, shown once, scoped to a tenant, revoked at once."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from dbtools import dump

import engram
from engram.cli import cli
from engram.errors import InvalidInput, NotFound, Unauthorized
from engram.keys import parse_key


def test_key_lifecycle(db: engram.Engram) -> None:
    record, full = db.create_key(tenant="acme", scopes=["read", "write"], name="bot")
    assert full.startswith(f"egm_{record.id}_")
    assert db.authenticate(full) == record
    assert [k.id for k in db.keys(tenant="acme")] == [record.id]
    assert db.keys(tenant="globex") == []
    # Only a hash of the secret is stored.
    secret = parse_key(full)[1]  # may itself contain "_"
    rows = dump(db)
    assert record.id in rows  # the key's row is in the dump (its id is stored in clear)
    assert secret not in rows and full not in rows
    db.revoke_key(record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        db.authenticate(full)
    with pytest.raises(NotFound):
        db.revoke_key(record.id)


@pytest.mark.parametrize(
    "presented",
    ["", "nonsense", "egm_000000000000_" + "x" * 43, "Bearer egm_abc"],
)
def test_bad_keys_are_refused(db: engram.Engram, presented: str) -> None:
    db.create_key(tenant="acme")
    with pytest.raises(Unauthorized):
        db.authenticate(presented)


def test_tampered_secret_is_refused(db: engram.Engram) -> None:
    _, full = db.create_key()
    with pytest.raises(Unauthorized, match="invalid API key"):
        db.authenticate(full[:-1] + ("A" if full[-1] != "A" else "B"))


def test_scopes_are_checked(db: engram.Engram) -> None:
    with pytest.raises(InvalidInput, match="invalid scopes"):
        db.create_key(scopes=["superuser"])


def test_keys_cli(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ENGRAM_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    made = runner.invoke(
        cli, ["keys", "create", "--tenant", "acme", "--scope", "write", "--name", "ci"]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[0]
    assert key.startswith("egm_")
    listed = runner.invoke(cli, ["keys", "list"])
    key_id = key.split("_")[1]
    assert key_id in listed.output and "acme" in listed.output and "active" in listed.output
    assert key.split("_", 2)[2] not in listed.output
    revoked = runner.invoke(cli, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    again = runner.invoke(cli, ["keys", "revoke", key_id])
    assert again.exit_code == 1 and "Error: no active API key" in again.output
