"""Verifying authgate's access tokens in another Python service, with only its public keys.

    verifier = Verifier("https://auth.example/.well-known/jwks.json",
                        issuer="authgate", audience="authgate")
    claims = await verifier.verify(token)          # AccessClaims, or an AuthError

Checks are exactly authgate's own (``authgate.tokens.TokenVerifier``); set
``max_lifetime_seconds`` to authgate's ``AUTHGATE_ACCESS_TOKEN_TTL_SECONDS`` when it is not
the default 900, since a token whose ``exp - iat`` is longer is refused. This service's
clock is not authgate's, so a token is accepted ``leeway_seconds`` (5 by default) past its
``exp``; authgate itself allows none unless told (``AUTHGATE_CLOCK_LEEWAY_SECONDS``). The key set
comes from the URL given here, never from a token; it is cached, and fetched again
when a token names an unknown ``kid``, at most once per ``min_refresh_seconds``.
Revocation is not visible here: a revoked session's tokens live until they expire
(15 minutes by default), as for any verifier that holds only public keys.

Adapters for Starlette and FastAPI: :class:`AuthgateMiddleware`, :func:`authenticate`,
:class:`Authenticated`, and :func:`require_role`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import httpx
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from authgate import keys
from authgate.errors import AuthError, InvalidTokenError, TokenError, TokenExpiredError
from authgate.models import AccessClaims, Clock, Role
from authgate.tokens import CLOCK_SKEW_SECONDS, TokenVerifier, token_from_headers

__all__ = [
    "AccessClaims",
    "Authenticated",
    "AuthgateMiddleware",
    "Verifier",
    "authenticate",
    "require_role",
]


class Verifier:
    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        algorithms: Iterable[str] = ("EdDSA", "ES256", "RS256"),
        leeway_seconds: int = CLOCK_SKEW_SECONDS,
        max_lifetime_seconds: int = 900,
        min_refresh_seconds: float = 30,
        cache_size: int = 10_000,
        decryption_key: bytes | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Clock = time.time,
    ) -> None:
        self._url = jwks_url
        self._algorithms = frozenset(algorithms) & keys.ASYMMETRIC
        self._keys: dict[str, keys.SigningKey] = {}
        self._missing: str | None = None
        self._fetched_at: float | None = None
        self._min_refresh = min_refresh_seconds
        self._http = http or httpx.AsyncClient(timeout=5)
        self._lock = asyncio.Lock()
        self._clock = clock
        self._tokens = TokenVerifier(
            self._lookup,
            algorithms=self._algorithms,
            issuer=issuer,
            audience=audience,
            leeway_seconds=leeway_seconds,
            max_lifetime_seconds=max_lifetime_seconds,
            max_token_bytes=8192,
            cache_size=cache_size,
            clock=clock,
            decryption_key=decryption_key,
        )

    async def verify(self, token: str) -> AccessClaims:
        """The claims of a valid token; raises ``InvalidTokenError`` or ``TokenExpiredError``."""
        if self._fetched_at is None:
            await self._refresh()
        self._missing = None
        try:
            return self._tokens.verify(token)
        except InvalidTokenError:
            if self._missing is None or not await self._refresh():
                raise
        return self._tokens.verify(token)  # once more, with the fresh key set

    def _lookup(self, kid: str | None) -> keys.SigningKey | None:
        key = None if kid is None else self._keys.get(kid)
        if key is None and kid is not None:
            self._missing = kid
        return key

    async def _refresh(self) -> bool:
        """Fetch the key set unless it was fetched within ``min_refresh_seconds``."""
        async with self._lock:
            now = self._clock()
            if self._fetched_at is not None and now - self._fetched_at < self._min_refresh:
                return False
            self._fetched_at = now
            try:
                response = await self._http.get(self._url, follow_redirects=False)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError):
                return False  # keep what we have; the next unknown kid tries again later
            self._keys = {key.kid: key for key in keys.from_key_set(document, self._algorithms)}
            return True

    async def aclose(self) -> None:
        await self._http.aclose()


def require_role(claims: AccessClaims, role: str) -> None:
    """403 unless the token carries ``role`` (user, moderator or admin)."""
    if Role(role) not in claims.roles:
        raise HTTPException(403, detail=f"Require {role.capitalize()} Role!")


async def authenticate(
    connection: HTTPConnection, verifier: Verifier, role: str | None = None
) -> AccessClaims:
    """The request's verified claims, or an HTTPException (401 with WWW-Authenticate, 403)."""
    claims = connection.scope.get("authgate.claims")
    if not isinstance(claims, AccessClaims):
        headers = connection.headers
        try:
            token = token_from_headers(headers.get("x-access-token"), headers.get("authorization"))
            if not token:
                raise HTTPException(401, "No token provided!", {"WWW-Authenticate": "Bearer"})
            claims = await verifier.verify(token)
        except TokenError as error:
            raise HTTPException(
                401, error.message, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from None
    if role is not None:
        require_role(claims, role)
    return claims


class Authenticated:
    """A FastAPI dependency::

    claims: AccessClaims = Depends(Authenticated(verifier, role="admin"))
    """

    def __init__(self, verifier: Verifier, role: str | None = None) -> None:
        self._verifier = verifier
        self._role = role

    async def __call__(self, connection: HTTPConnection) -> AccessClaims:
        return await authenticate(connection, self._verifier, self._role)


class AuthgateMiddleware:
    """Verifies a token when one is sent and leaves its claims in ``scope["authgate.claims"]``.

    It never refuses a request by itself: public routes stay public, and protected ones ask
    with :func:`authenticate` (which reuses the claims found here).
    """

    def __init__(self, app: ASGIApp, verifier: Verifier) -> None:
        self.app = app
        self._verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            connection = HTTPConnection(scope)
            headers = connection.headers
            try:
                token = token_from_headers(
                    headers.get("x-access-token"), headers.get("authorization")
                )
                if token:
                    scope["authgate.claims"] = await self._verifier.verify(token)
            except (AuthError, TokenExpiredError):
                pass  # left to authenticate(), which answers with the reason
        await self.app(scope, receive, send)
