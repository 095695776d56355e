"""The rules of signing up and signing in, and who a token's caller is. No HTTP, no SQL.

Refresh and sign-out by refresh token live in ``refresh.py``; a signed-in user's own account in
``accounts.py``; what admins and operators do in ``admin.py``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable

from authgate.accounts import Accounts
from authgate.errors import (
    InvalidCredentialsError,
    InvalidInputError,
    InvalidTokenError,
    MissingTokenError,
    RoleGrantDeniedError,
    RoleRequiredError,
)
from authgate.models import AccessClaims, Clock, Role, SignedIn, TokenPair, User
from authgate.passwords import PasswordHasher
from authgate.policy import normalize_password, normalize_username, parse_roles, username_key
from authgate.refresh import RefreshService, digest
from authgate.revocations import RevokedSessions
from authgate.storage import Database
from authgate.throttle import Throttle
from authgate.tokens import TokenCodec

security_log = logging.getLogger("authgate.security")


def require_role(claims: AccessClaims, role: Role) -> None:
    """The one role check, shared by routes and the service: each route asks for its own role."""
    if role not in claims.roles:
        raise RoleRequiredError(role)


class AuthService:
    """Sign-up, sign-in and the caller of a request, each one short transaction."""

    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        throttle: Throttle,
        revoked: RevokedSessions,
        *,
        accounts: Accounts,
        refreshes: RefreshService,
        clock: Clock,
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._tokens = tokens
        self._throttle = throttle
        self._revoked = revoked  # the set every request checks
        self._accounts = accounts
        self._refreshes = refreshes  # a new session's first refresh token, by its policy
        self._clock = clock

    # -- access tokens -------------------------------------------------------

    def authenticate(self, token: str | None) -> AccessClaims:
        """Verified claims of a live session's access token; no database round trip."""
        if not token:
            raise MissingTokenError()
        claims = self._tokens.verify(token)
        if claims.session_id in self._revoked:
            raise InvalidTokenError()
        return claims

    # -- sign-up -------------------------------------------------------------

    async def sign_up(
        self,
        username: str,
        email: str,
        password: str,
        roles: Iterable[str] | None = None,
        *,
        actor: AccessClaims | None = None,
        client: str = "",
    ) -> int:
        """Create a user; roles beyond ``user`` need an admin's verified token as ``actor``."""
        await self._throttle.sign_up_attempt(client)
        wanted = parse_roles(roles)
        if wanted - {Role.USER} and (actor is None or Role.ADMIN not in actor.roles):
            raise RoleGrantDeniedError()
        return await self._accounts.create(username, email, password, wanted)

    # -- sign-in -------------------------------------------------------------

    async def sign_in(
        self, username: str, password: str, *, client: str = "", user_agent: str = ""
    ) -> SignedIn:
        """Tokens for valid credentials; one error, one cost, for every kind of failure.

        Unknown and existing accounts are throttled alike, so a 429 reveals nothing.
        """
        user: User | None = None
        try:
            key: str | None = username_key(normalize_username(username))
        except InvalidInputError:
            key = None
        account = key or username.strip().casefold()[:128]
        await self._throttle.sign_in_attempt(client, account)
        if key is not None:
            async with self._database.transaction(read_only=True) as tx:
                user = await tx.users.get_by_username_key(key)
        if user is not None and not user.enabled:
            user = None
        secret = normalize_password(password)
        if not await self._hasher.verify(user.password_hash if user else None, secret):
            security_log.warning("sign_in.failed", extra={"event": "sign_in.failed"})
            await self._throttle.sign_in_failed(client, account)
            raise InvalidCredentialsError()
        if user is None:  # pragma: no cover - verify() is False without a hash
            raise InvalidCredentialsError()
        await self._throttle.sign_in_succeeded(client, account)
        upgraded = (
            await self._hasher.hash(secret)
            if self._hasher.needs_rehash(user.password_hash)
            else None
        )

        now = int(self._clock())
        session_id = secrets.token_hex(16)
        refresh_token = self._refreshes.new_token()
        policy = self._refreshes.policy
        session_expires_at = policy.session_expires_at(now)
        async with self._database.transaction() as tx:
            if upgraded is not None:
                await tx.users.set_password_hash(user.id, upgraded)
            await tx.sessions.create(
                session_id,
                user.id,
                now=now,
                expires_at=session_expires_at,
                client_address=client,
                user_agent=user_agent,
            )
            await tx.refresh_tokens.insert(
                digest(refresh_token),
                session_id,
                parent_id=None,
                now=now,
                expires_at=policy.expires_at(now, session_expires_at),
            )
        security_log.info(
            "sign_in.succeeded", extra={"event": "sign_in.succeeded", "user_id": user.id}
        )
        access_token = self._tokens.issue(user.id, user.roles, session_id, auth_time=now)
        return SignedIn(user=user, tokens=TokenPair(access_token, refresh_token))
