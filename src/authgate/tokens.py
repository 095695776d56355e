"""Issuing and verifying access tokens (with ``keys.py``, the home of the JOSE library).

Verification is deliberately narrow, and the same in authgate and in
``authgate.verify``: a format and length check before the library sees
anything; a header allow-list; the key looked up by ``kid`` among the trusted
keys only, never fetched or built from the header; the header's ``alg`` must be
the one configured for that key; typed claims; time checks against the
injected clock. Verified tokens are cached by their exact string; a hit skips
the signature but never the time checks.

With an encryption key, access tokens are nested JWTs (RFC 7519 §5.2): the
signed token, encrypted as compact JWE (``dir``/``A256GCM``). A verifier that
holds the key accepts only encrypted tokens, so nobody can downgrade to a
readable one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable

import msgspec
from joserfc import jwe, jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from authgate.errors import InvalidTokenError, TokenExpiredError
from authgate.keys import KeyRing, SigningKey
from authgate.models import AccessClaims, Clock, Role

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type (RFC 9068), not a secret
_SEGMENT = rb"[A-Za-z0-9_-]+"
_JWS_COMPACT = re.compile(rb"^%s\.%s\.%s$" % (_SEGMENT, _SEGMENT, _SEGMENT))
# ``dir`` has an empty encrypted-key segment.
_JWE_COMPACT = re.compile(rb"^%s\.\.%s\.%s\.%s$" % (_SEGMENT, _SEGMENT, _SEGMENT, _SEGMENT))
_ALLOWED_HEADER = frozenset({"alg", "typ", "kid"})
#: The order n of P-256 (SEC 2). An ECDSA signature (r, s) also verifies as (r, n - s), so
#: only the low-S spelling (s <= n / 2) is signed or accepted: no token has two spellings.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_JWE_HEADER = {"alg": "dir", "enc": "A256GCM", "cty": "JWT"}

#: Finds a trusted key by the token's ``kid`` (None when the header has none).
KeyLookup = Callable[[str | None], SigningKey | None]

#: How far apart the clocks of authgate's servers, and of the services that verify its
#: tokens, may be (NTP keeps them far closer). A token stamped up to this far in the future
#: (by a server whose clock runs ahead) is accepted whatever the leeway, and it is the
#: default leeway of ``authgate.verify``, whose clock is another machine's.
CLOCK_SKEW_SECONDS = 5


def accepted_for_seconds(ttl_seconds: int, leeway_seconds: int) -> int:
    """How long after it was issued an access token may still be accepted somewhere: its
    lifetime, then the leeway past ``exp`` (authgate's, or at least a peer's default), on a
    clock up to ``CLOCK_SKEW_SECONDS`` behind the issuer's. Revoked sessions are remembered,
    and a retired key kept, this long."""
    return ttl_seconds + max(leeway_seconds, CLOCK_SKEW_SECONDS) + CLOCK_SKEW_SECONDS


class _Claims(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The wire shape of our access-token payload; anything else, an unknown claim
    included, is refused."""

    iss: str
    aud: str
    sub: str
    sid: str
    jti: str
    iat: int
    nbf: int
    exp: int
    roles: list[Role]
    auth_time: int | None = None  # absent from tokens issued before it existed


def token_from_headers(legacy: str | None, authorization: str | None) -> str | None:
    """The one rule for reading a token: ``x-access-token`` or ``Authorization: Bearer``,
    never the URL. Both present must agree; two different tokens are refused rather than
    one picked silently. Shared by authgate and ``authgate.verify``."""
    bearer = None
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer":
            bearer = value.strip()
    if legacy and bearer and legacy != bearer:
        raise InvalidTokenError()
    return legacy or bearer


def ring_lookup(ring: KeyRing) -> KeyLookup:
    """Lookup in authgate's own ring. Tokens from before key ids (HS256 only) carry no
    ``kid``; they are checked against the one HS256 key."""

    def lookup(kid: str | None) -> SigningKey | None:
        if kid is None:
            signer = ring.signer()
            return signer if signer.algorithm == "HS256" else None
        return ring.verifier(kid)

    return lookup


#: Typed and strict: a claim of the wrong JSON type is refused, not coerced.
_CLAIMS = msgspec.json.Decoder(_Claims)


def _b64decode(segment: bytes) -> bytes:
    """base64url without padding, canonical only (joserfc's own decoder: a signature with
    its unused low bits set is refused, so no token has two spellings)."""
    return urlsafe_b64decode(segment)


@functools.lru_cache(maxsize=64)
def _header(segment: bytes) -> dict[str, object] | None:
    """A JWS header as a JSON object, or None. Every token a key signs has the same header
    segment, so it is decoded once per key, not once per token. Never mutate the result."""
    try:
        header = json.loads(_b64decode(segment))
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _high_s(signature: bytes) -> bool:
    """Whether an ES256 signature (r || s, 32 bytes each) is the high-S spelling."""
    return int.from_bytes(signature[32:], "big") > _P256_ORDER // 2


def _low_s(token: str) -> str:
    """A compact ES256 token with its signature in the low-S spelling."""
    signing_input, _, signature_segment = token.rpartition(".")
    signature = _b64decode(signature_segment.encode())
    if not _high_s(signature):
        return token
    s = _P256_ORDER - int.from_bytes(signature[32:], "big")
    low = signature[:32] + s.to_bytes(32, "big")
    return f"{signing_input}.{urlsafe_b64encode(low).decode()}"


def _signature_valid(key: SigningKey, raw: bytes, signature_segment: bytes) -> bool:
    """The signature over ``header.payload``, by the key and algorithm already bound."""
    if key.algorithm == "HS256" and isinstance(key.key, OctKey):
        # What joserfc does for HS256, without building its objects first (a third of the
        # time of a token the cache has not seen; docs/benchmarks.md).
        signing_input = raw[: len(raw) - len(signature_segment) - 1]
        expected = hmac.new(key.key.raw_value, signing_input, hashlib.sha256).digest()
        return hmac.compare_digest(expected, _b64decode(signature_segment))
    if key.algorithm == "ES256" and _high_s(_b64decode(signature_segment)):
        return False
    return jws.validate_compact(jws.extract_compact(raw), key.key, algorithms=[key.algorithm])


class TokenVerifier:
    """Strict verification of access tokens for one issuer and audience."""

    def __init__(
        self,
        lookup: KeyLookup,
        *,
        algorithms: frozenset[str],
        issuer: str,
        audience: str,
        leeway_seconds: int,
        max_lifetime_seconds: int,
        max_token_bytes: int,
        cache_size: int,
        clock: Clock,
        decryption_key: bytes | None = None,
    ) -> None:
        """``max_lifetime_seconds``: the longest ``exp - iat`` accepted (the issuer's
        access-token lifetime), so a token minted with a stolen key cannot outlive it."""
        self._lookup = lookup
        self._algorithms = algorithms
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._max_bytes = max_token_bytes
        self._clock = clock
        self._decryption_key = None if decryption_key is None else OctKey.import_key(decryption_key)
        self._cache: dict[str, AccessClaims] = {}
        self._cache_size = cache_size

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
        if len(raw) > self._max_bytes:
            raise InvalidTokenError()
        if self._decryption_key is not None:
            raw = self._decrypt(raw, self._decryption_key)
        if not _JWS_COMPACT.fullmatch(raw):
            raise InvalidTokenError()
        header_segment, payload_segment, signature_segment = raw.split(b".")
        header = _header(header_segment)
        if header is None or set(header) - _ALLOWED_HEADER or header.get("typ") != TOKEN_TYPE:
            raise InvalidTokenError()
        kid = header.get("kid")
        key = self._lookup(kid) if kid is None or isinstance(kid, str) else None
        if (
            key is None
            or key.algorithm not in self._algorithms
            or header.get("alg") != key.algorithm
        ):
            raise InvalidTokenError()
        try:
            if not _signature_valid(key, raw, signature_segment):
                raise InvalidTokenError()
            claims = _CLAIMS.decode(_b64decode(payload_segment))
        except (JoseError, ValueError, TypeError, msgspec.DecodeError):
            raise InvalidTokenError() from None
        if (
            claims.iss != self._issuer
            or claims.aud != self._audience
            or not claims.sub.isdecimal()
            or claims.exp - claims.iat > self._max_lifetime
        ):
            raise InvalidTokenError()
        return AccessClaims(
            subject=claims.sub,
            session_id=claims.sid,
            roles=frozenset(claims.roles),
            issued_at=claims.iat,
            not_before=claims.nbf,
            expires_at=claims.exp,
            token_id=claims.jti,
            authenticated_at=claims.auth_time,
        )

    @staticmethod
    def _decrypt(raw: bytes, key: OctKey) -> bytes:
        """The signed token inside a JWE; anything else (a bare JWS included) is refused."""
        if not _JWE_COMPACT.fullmatch(raw):
            raise InvalidTokenError()
        try:
            opened = jwe.decrypt_compact(raw, key, algorithms=["dir", "A256GCM"])
        except (JoseError, ValueError, TypeError):
            raise InvalidTokenError() from None
        if opened.headers() != _JWE_HEADER or opened.plaintext is None:
            raise InvalidTokenError()
        return opened.plaintext

    def _check_time(self, claims: AccessClaims) -> None:
        now = self._clock()
        # Another server's clock may run ahead of this one: what it has just issued is not
        # "issued in the future", even with no leeway.
        latest = now + max(self._leeway, CLOCK_SKEW_SECONDS)
        if claims.not_before > latest or claims.issued_at > latest:
            raise InvalidTokenError()
        if claims.expires_at <= now - self._leeway:
            raise TokenExpiredError()


class TokenIssuer:
    """Signs access tokens with the ring's current key (and encrypts them when configured)."""

    def __init__(
        self,
        ring: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Clock,
        encryption_key: bytes | None = None,
        new_id: Callable[[], str] = lambda: secrets.token_urlsafe(12),
    ) -> None:
        self._ring = ring
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._clock = clock
        self._encryption_key = None if encryption_key is None else OctKey.import_key(encryption_key)
        self._new_id = new_id

    def issue(
        self, user_id: int, roles: frozenset[Role], session_id: str, *, auth_time: int
    ) -> str:
        """``auth_time``: when the user last proved their password (the session's sign-in)."""
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
            "auth_time": auth_time,
        }
        signer = self._ring.signer()
        header = {"alg": signer.algorithm, "typ": TOKEN_TYPE, "kid": signer.kid}
        signed = jwt.encode(header, claims, signer.key, algorithms=[signer.algorithm])
        if signer.algorithm == "ES256":
            signed = _low_s(signed)
        if self._encryption_key is None:
            return signed
        return jwe.encrypt_compact(_JWE_HEADER, signed.encode(), self._encryption_key)


class TokenCodec:
    """authgate's own issuer and verifier over one key ring."""

    def __init__(
        self,
        ring: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        leeway_seconds: int,
        max_token_bytes: int,
        cache_size: int,
        clock: Clock,
        encryption_key: bytes | None = None,
    ) -> None:
        self.ring = ring
        self._issuer = TokenIssuer(
            ring,
            issuer=issuer,
            audience=audience,
            ttl_seconds=ttl_seconds,
            clock=clock,
            encryption_key=encryption_key,
        )
        self._verifier = TokenVerifier(
            ring_lookup(ring),
            algorithms=frozenset({"HS256", "EdDSA", "ES256", "RS256"}),
            issuer=issuer,
            audience=audience,
            leeway_seconds=leeway_seconds,
            max_lifetime_seconds=ttl_seconds,
            max_token_bytes=max_token_bytes,
            cache_size=cache_size,
            clock=clock,
            decryption_key=encryption_key,
        )
        self.issue = self._issuer.issue
        self.verify = self._verifier.verify
