"""API keys: generation, hashing and verification.

A key looks like ``egm_<id>_<secret>``: ``id`` (12 hex characters) is stored in clear and used
to find the record; ``secret`` (32 random bytes, URL-safe) is stored only as a SHA-256 hash.
A slow password hash is not needed: the secret has 256 bits of entropy, so it cannot be
guessed from its hash, and verification stays fast on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from .errors import InvalidInput

SCOPES = ("read", "write", "admin")
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
