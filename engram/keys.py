"""API keys: generation, hashing and verification.

A key looks like ``egm_<id>_<secret>``: ``id`` (12 hex characters) is stored in clear and used
to find the record; ``secret`` (32 random bytes, URL-safe) is stored only as a SHA-256 hash.
A slow password hash is not needed: the secret has 256 bits of entropy, so it cannot be
guessed from its hash, and verification stays fast on every request.

The HTTP server remembers keys it verified for a few seconds (:class:`VerifiedKeys`), so a
request costs no database lookup. Revocation still takes effect at once on the machine:
:meth:`Engram.revoke_key <engram.engine.Engram.revoke_key>` replaces a stamp file in the data
directory (:func:`bump_revision`), and every server process sharing that directory checks the
stamp (one ``stat`` call) before trusting what it remembers. Processes on other machines (a
shared PostgreSQL, no shared data directory) notice within the time-to-live.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput

logger = logging.getLogger("engram.keys")

SCOPES = ("read", "write", "admin")
REVISION_FILE = "keys.revision"  # in the data directory; replaced at every revocation
VERIFIED_TTL = 5.0  # seconds a server process trusts a key it verified (see VerifiedKeys)
_KEY = re.compile(r"^egm_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None
    last_used_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def new_key() -> tuple[str, str, str]:
    """A fresh key: (key id, full key to hand to the user once, hash of the secret)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return key_id, f"egm_{key_id}_{secret}", hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(key: str) -> tuple[str, str]:
    """Split a presented key into (key id, secret); raises InvalidInput if malformed."""
    match = _KEY.match(key.strip())
    if not match:
        raise InvalidInput("malformed API key", hint="keys look like egm_<id>_<secret>")
    return match[1], match[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(
            f"invalid scopes {', '.join(unknown) or '(none)'}",
            hint=f"choose among {', '.join(SCOPES)}",
        )
    return tuple(dict.fromkeys(scopes))


# -- revocation stamp and the server's verified-key memory ------------------------------------
Stamp = tuple[int, int, int] | None


def revision_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / REVISION_FILE


def bump_revision(data_dir: str | os.PathLike[str]) -> None:
    """Tell every process using ``data_dir`` that a key was revoked: the stamp file is
    replaced (a new inode), which :class:`VerifiedKeys` notices on its next lookup. Best
    effort: a failure is logged, and remembered keys then expire within the time-to-live."""
    path = revision_path(data_dir)
    tmp = path.with_name(f".{REVISION_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        tmp.write_text(f"{time.time_ns()}\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("could not write the key revocation stamp %s: %s", path, exc)
        tmp.unlink(missing_ok=True)


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class VerifiedKeys:
    """API keys this process verified recently: presented key → record, for ``ttl`` seconds.

    Every lookup first reads the revocation stamp of ``stamp_path`` (one ``stat``); when it
    changed, everything remembered is forgotten. :meth:`lookup` returns the stamp it saw and
    :meth:`remember` takes it back, so a verification that raced a revocation is never stored.
    Only successful verifications are remembered: unknown keys always reach the database.
    Not thread-safe: the server uses it from its event loop only.
    """

    def __init__(
        self,
        stamp_path: Path | None,
        *,
        ttl: float = VERIFIED_TTL,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stamp_path = stamp_path
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        self._seen: Stamp = _stamp(stamp_path) if stamp_path else None

    def lookup(self, presented: str) -> tuple[ApiKey | None, Stamp]:
        """The remembered record of ``presented`` (None: verify it) and the current stamp."""
        stamp = _stamp(self.stamp_path) if self.stamp_path else None
        if stamp != self._seen:
            self._entries.clear()
            self._seen = stamp
        entry = self._entries.get(presented)
        if entry is None:
            return None, stamp
        if entry[1] <= self._clock():
            del self._entries[presented]
            return None, stamp
        return entry[0], stamp

    def remember(self, presented: str, key: ApiKey, stamp: Stamp) -> None:
        """Remember ``key``, verified while the stamp was ``stamp`` (from :meth:`lookup`)."""
        if stamp != self._seen or not self.ttl:
            return  # a key was revoked meanwhile: this verification may predate it
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude but bounded; refills at one lookup per key
        self._entries[presented] = (key, self._clock() + self.ttl)

    def __len__(self) -> int:
        return len(self._entries)
