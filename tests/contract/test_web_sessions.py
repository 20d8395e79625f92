"""Contract: web app sessions (WebSessionStore), on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engram.keys import ApiKey
from engram.store.contract import Store
from engram.store.web_session_tables import WebSession

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _session(key_id: str | None, *, hours: float = 12, user: str | None = None) -> WebSession:
    return WebSession(
        tenant="acme",
        scopes=frozenset({"read", "write"}),
        key_id=key_id,
        subject=key_id or "alice@idp",
        user_id=user,
        csrf="csrf-secret",
        created_at=NOW.isoformat(timespec="seconds"),
        expires_at=(NOW + timedelta(hours=hours)).isoformat(timespec="seconds"),
    )


def test_a_session_is_found_by_its_hash_until_it_expires(store: Store) -> None:
    store.create_api_key(
        ApiKey("aaaaaaaaaaaa", "acme", "", ("read", "write"), NOW.isoformat()), "h"
    )
    store.create_web_session("t1", _session("aaaaaaaaaaaa"))
    store.create_web_session("t2", _session(None, hours=1, user="u1"))  # a JWT's, bound
    found = store.get_web_session("t1", NOW)
    assert found == _session("aaaaaaaaaaaa")
    assert store.get_web_session("t2", NOW) == _session(None, hours=1, user="u1")
    assert store.get_web_session("nope", NOW) is None
    later = NOW + timedelta(hours=2)
    assert store.get_web_session("t2", later) is None  # expired
    assert store.get_web_session("t1", later) is not None
    assert store.purge_web_sessions(later) == 1
    assert store.delete_web_session("t1") is True
    assert store.delete_web_session("t1") is False
    assert store.get_web_session("t1", NOW) is None


def test_revoking_the_key_ends_its_sessions(store: Store) -> None:
    store.create_api_key(ApiKey("bbbbbbbbbbbb", "acme", "", ("read",), NOW.isoformat()), "h")
    store.create_web_session("t", _session("bbbbbbbbbbbb"))
    store.create_web_session("orphan", _session("cccccccccccc"))  # no such key
    assert store.get_web_session("t", NOW) is not None
    assert store.get_web_session("orphan", NOW) is None
    store.revoke_api_key("bbbbbbbbbbbb")
    assert store.get_web_session("t", NOW) is None
