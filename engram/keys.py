"""API keys: generation, hashing and verification.

A key looks like ``egm_<id>_<secret>``: ``id`` (12 hex characters) is stored in clear and used
to find the record; ``secret`` (32 random bytes, URL-safe) is stored only as a SHA-256 hash.
A slow password hash is not needed: the secret has 256 bits of entropy, so it cannot be
guessed from its hash, and verification stays fast on every request.

The HTTP server remembers keys it verified for a few seconds (:class:`VerifiedKeys`), so a
request costs no database lookup. Revocation still takes effect at once:
:meth:`Engram.revoke_key <engram.engine.Engram.revoke_key>` replaces a stamp file in the data
directory and, with Redis, a revision value there (:func:`bump_revision`); every server
process checks both (one ``stat``, one ``GET``) before trusting what it remembers. Without
Redis, servers on other machines (a shared PostgreSQL, no shared data directory) notice
within the time-to-live.
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
from typing import Any

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
    # Set for a key bound to one user of the tenant: it reaches only that user's
    # conversations, memories and state (None: the whole tenant, as its scopes allow).
    user_id: str | None = None

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
# What a server compares before trusting a remembered key: the stamp file's (inode, mtime,
# size) and, with Redis, the value of REDIS_REVISION_KEY. UNKNOWN: Redis did not answer.
Stamp = tuple[Any, ...]
UNKNOWN: Stamp = ("unknown",)
REDIS_REVISION_KEY = "engram:keys:revision"
REDIS_RETRY = 5.0  # seconds without asking Redis after it failed
WARN_EVERY = 60.0


def revision_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / REVISION_FILE


def bump_revision(data_dir: str | os.PathLike[str], *, redis_url: str | None = None) -> None:
    """Tell every server that a key was revoked: the stamp file in ``data_dir`` is replaced
    (a new inode; the directory is created if need be), and with ``redis_url`` the Redis
    revision gets a new random value, which servers on other hosts read. Best effort: a
    failure is logged, and servers that missed it stop trusting the key within the TTL."""
    path = revision_path(data_dir)
    tmp = path.with_name(f".{REVISION_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(f"{time.time_ns()}\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("could not write the key revocation stamp %s: %s", path, exc)
        tmp.unlink(missing_ok=True)
    if redis_url:
        try:
            import redis
        except ImportError:
            logger.warning("ENGRAM_REDIS_URL is set but the redis package is not installed")
            return
        client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        try:
            # A random value, not a counter: a flushed database must not repeat an old one.
            client.set(REDIS_REVISION_KEY, secrets.token_hex(8))
        except (redis.RedisError, OSError) as exc:
            logger.warning(
                "could not publish the key revocation to Redis (%s): servers on other hosts"
                " accept the key for up to %.0f s more",
                exc,
                VERIFIED_TTL,
            )
        finally:
            client.close()


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class VerifiedKeys:
    """API keys this process verified recently: presented key → record, for ``ttl`` seconds.

    Before each lookup the server reads the revocation stamp (:meth:`stamp`: one ``stat`` of
    ``stamp_path``, plus one Redis ``GET`` when ``redis_url`` is set); when it changed,
    everything remembered is forgotten. :meth:`remember` takes the stamp read before the
    verification, so a verification that raced a revocation is never stored. When Redis does
    not answer, nothing is trusted (every key goes to the database) until it does. Only
    successful verifications are remembered: unknown keys always reach the database.
    Not thread-safe: the server uses it from its event loop only.
    """

    def __init__(
        self,
        stamp_path: Path | None,
        *,
        redis_url: str | None = None,
        ttl: float = VERIFIED_TTL,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stamp_path = stamp_path
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        self._seen: Stamp = UNKNOWN
        self._redis: Any = None
        if redis_url:
            from .cache import LoopRedis

            self._redis = LoopRedis(redis_url)
        self._redis_down_until = 0.0
        self._warned_at = -WARN_EVERY

    async def stamp(self) -> Stamp:
        """The current revocation stamp (:data:`UNKNOWN` while Redis fails)."""
        file = _file_stamp(self.stamp_path)
        if self._redis is None:
            return (file,)
        now = time.monotonic()
        if now < self._redis_down_until:
            return UNKNOWN
        try:
            value = await self._redis.client().get(REDIS_REVISION_KEY)
        except self._redis.errors as exc:
            self._redis_down_until = now + REDIS_RETRY
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                logger.warning(
                    "Redis is unreachable for key revocations (%s): verifying every API key"
                    " against the database until it answers",
                    exc,
                )
            return UNKNOWN
        return (file, value)

    def lookup(self, presented: str, stamp: Stamp) -> ApiKey | None:
        """The remembered record of ``presented`` under ``stamp``; None: verify it."""
        if stamp is UNKNOWN or stamp != self._seen:
            self._entries.clear()
            self._seen = stamp
        entry = self._entries.get(presented)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[presented]
            return None
        return entry[0]

    def remember(self, presented: str, key: ApiKey, stamp: Stamp) -> None:
        """Remember ``key``, verified while the stamp was ``stamp`` (read before verifying)."""
        if stamp is UNKNOWN or stamp != self._seen or not self.ttl:
            return  # unknown, or a key was revoked meanwhile: the answer may predate it
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # crude but bounded; refills at one lookup per key
        self._entries[presented] = (key, self._clock() + self.ttl)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    def __len__(self) -> int:
        return len(self._entries)
