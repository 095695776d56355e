"""Issuing and verifying access tokens (the only importer of the JOSE library).

Verification is deliberately narrow: a format and length check before the
library sees anything, one algorithm from configuration, a fixed key that no
header value can select, a header allow-list, typed claims, and time checks
against the injected clock. Verified tokens are cached by their exact string;
a hit skips the signature but never the time checks.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

import msgspec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from authgate.errors import InvalidTokenError, TokenExpiredError
from authgate.models import AccessClaims, Clock, Role

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type (RFC 9068), not a secret
_JWS_COMPACT = re.compile(rb"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_ALLOWED_HEADER = frozenset({"alg", "typ", "kid"})


class _Claims(msgspec.Struct, frozen=True):
    """The wire shape of our access-token payload; anything else is refused."""

    iss: str
    aud: str
    sub: str
    sid: str
    jti: str
    iat: int
    nbf: int
    exp: int
    roles: list[Role]


class TokenCodec:
    """Signs and verifies HS256 access tokens for one issuer and audience."""

    def __init__(
        self,
        key: bytes,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        leeway_seconds: int,
        max_token_bytes: int,
        cache_size: int,
        clock: Clock,
        new_id: Callable[[], str] = lambda: secrets.token_urlsafe(12),
    ) -> None:
        self._key = OctKey.import_key(key)
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._leeway = leeway_seconds
        self._max_bytes = max_token_bytes
        self._clock = clock
        self._new_id = new_id
        self._cache: dict[str, AccessClaims] = {}
        self._cache_size = cache_size

    def issue(self, user_id: int, roles: frozenset[Role], session_id: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "sid": session_id,
            "jti": self._new_id(),
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "roles": sorted(roles),
        }
        return jwt.encode(
            {"alg": ALGORITHM, "typ": TOKEN_TYPE}, claims, self._key, algorithms=[ALGORITHM]
        )

    def verify(self, token: str) -> AccessClaims:
        """Claims of a valid token; ``TokenExpiredError`` only once the signature verified."""
        cached = self._cache.get(token)
        if cached is None:
            cached = self._decode(token)
            if self._cache_size:
                if len(self._cache) >= self._cache_size:
                    # dicts keep insertion order: drop the oldest entry.
                    del self._cache[next(iter(self._cache))]
                self._cache[token] = cached
        self._check_time(cached)
        return cached

    def _decode(self, token: str) -> AccessClaims:
        raw = token.encode("utf-8", "replace")
        if len(raw) > self._max_bytes or not _JWS_COMPACT.fullmatch(raw):
            raise InvalidTokenError()
        try:
            decoded = jwt.decode(raw, self._key, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError):
            raise InvalidTokenError() from None
        header = decoded.header
        if set(header) - _ALLOWED_HEADER or header.get("typ") != TOKEN_TYPE:
            raise InvalidTokenError()
        try:
            claims = msgspec.convert(decoded.claims, _Claims)
        except msgspec.ValidationError:
            raise InvalidTokenError() from None
        if claims.iss != self._issuer or claims.aud != self._audience or not claims.sub.isdecimal():
            raise InvalidTokenError()
        return AccessClaims(
            subject=claims.sub,
            session_id=claims.sid,
            roles=frozenset(claims.roles),
            issued_at=claims.iat,
            not_before=claims.nbf,
            expires_at=claims.exp,
            token_id=claims.jti,
        )

    def _check_time(self, claims: AccessClaims) -> None:
        now = self._clock()
        if claims.not_before > now + self._leeway or claims.issued_at > now + self._leeway:
            raise InvalidTokenError()
        if claims.expires_at <= now - self._leeway:
            raise TokenExpiredError()
