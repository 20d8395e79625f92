"""JWT bearer tokens from an external identity provider.

Enabled by ``ENGRAM_JWT_SECRET`` (HS256 shared secret) or ``ENGRAM_JWT_JWKS_URL`` (RS256/ES256
keys published by the provider, fetched and cached by PyJWT's ``PyJWKClient``). The token's
signature, expiry, and — when configured — issuer and audience are verified; the tenant comes
from a claim (``ENGRAM_JWT_TENANT_CLAIM``, default ``tenant``) and scopes from ``scope``
(space separated, OAuth style) or ``scopes`` (a list). Unknown scopes are ignored.
"""

from __future__ import annotations

from typing import Any

import jwt

from ..config import Settings
from ..errors import Unauthorized
from ..keys import SCOPES


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None

    def verify(self, token: str) -> tuple[str, frozenset[str], str, str | None]:
        """(tenant, scopes, subject, bound user or None) of a valid token; raises
        Unauthorized otherwise."""
        s = self.settings
        try:
            if self._jwks is not None:
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256"]
            else:
                key, algorithms = s.jwt_secret, ["HS256"]
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=s.jwt_audience,
                issuer=s.jwt_issuer,
                options={"require": ["exp"], "verify_aud": s.jwt_audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        tenant = claims.get(s.jwt_tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthorized(f"the token has no {s.jwt_tenant_claim!r} claim")
        raw = claims.get("scope", claims.get("scopes", []))
        scopes = raw.split() if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
        user = None
        if s.jwt_user_claim:
            user = claims.get(s.jwt_user_claim)
            if not isinstance(user, str) or not user:
                raise Unauthorized(f"the token has no {s.jwt_user_claim!r} claim naming its user")
        granted = frozenset(x for x in scopes if x in SCOPES)
        return tenant, granted, str(claims.get("sub", "?")), user
