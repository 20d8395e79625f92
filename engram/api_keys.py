"""The API-key methods of :class:`engram.Engram` (create, list, revoke, authenticate), over
the key primitives of :mod:`engram.keys`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .errors import InvalidInput, NotFound, Unauthorized
from .keys import ApiKey, bump_revision, check_scopes, new_key, parse_key, secret_matches

if TYPE_CHECKING:
    from .analytics.service import Analytics
    from .config import Settings
    from .store.contract import Store


class KeysMixin:
    """The API-key methods of :class:`engram.Engram`: create, list, revoke, authenticate."""

    if TYPE_CHECKING:
        settings: Settings
        store: Store

        @property
        def analytics(self) -> Analytics: ...

    def create_key(
        self,
        *,
        tenant: str = "default",
        scopes: Sequence[str] = ("read",),
        name: str = "",
        user_id: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Create an API key; returns the record and the full key, which is shown only once.
        ``user_id`` binds the key to that user of the tenant: it reaches only the user's
        conversations, memories and state (and cannot have the admin scope)."""
        granted = check_scopes(list(scopes))
        if user_id is not None:
            if not user_id.strip() or len(user_id) > 200:
                raise InvalidInput("a key's user id must be 1 to 200 characters")
            if "admin" in granted:
                raise InvalidInput(
                    "a key bound to one user cannot have the admin scope",
                    hint="give it read and write; administer with a tenant-wide key",
                )
        key_id, full, secret_hash = new_key()
        record = ApiKey(
            key_id,
            tenant,
            name,
            granted,
            datetime.now(UTC).isoformat(timespec="seconds"),
            user_id=user_id,
        )
        self.store.create_api_key(record, secret_hash)
        self.analytics.key_changed(record, "key_created")
        return record, full

    def keys(self, *, tenant: str | None = None) -> list[ApiKey]:
        return self.store.list_api_keys(tenant)

    def revoke_key(self, key_id: str) -> None:
        found = self.store.get_api_key(key_id)
        if not self.store.revoke_api_key(key_id):
            raise NotFound(
                f"no active API key {key_id!r}", hint="list keys with `engram keys list`"
            )
        if found is not None:
            self.analytics.key_changed(found[0], "key_revoked")
        # Servers remember verified keys for a few seconds: tell them to forget (engram.keys).
        bump_revision(self.settings.data_dir, redis_url=self.settings.redis_url)

    def authenticate(self, presented: str) -> ApiKey:
        """The active key matching ``presented``; raises Unauthorized otherwise. Not cached,
        so a revoked key is refused on its very next use."""
        try:
            key_id, secret = parse_key(presented)
        except InvalidInput as exc:
            raise Unauthorized("malformed API key", hint=exc.hint) from exc
        found = self.store.get_api_key(key_id)
        if found is None or not secret_matches(secret, found[1]):
            raise Unauthorized("invalid API key")
        if not found[0].active:
            raise Unauthorized("this API key was revoked")
        return found[0]
