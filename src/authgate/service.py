"""The rules of signing up, signing in, refresh and sign-out, and who a token's caller is.
No HTTP, no SQL."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable

from authgate.accounts import Accounts, revoke_session
from authgate.errors import (
    AuthError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    MissingTokenError,
    RefreshTokenExpiredError,
    RefreshTokenReusedError,
    RefreshTokenRevokedError,
    RoleGrantDeniedError,
    RoleRequiredError,
)
from authgate.keys import Sealer
from authgate.models import (
    AccessClaims,
    Clock,
    RefreshRecord,
    Role,
    SignedIn,
    TokenPair,
    User,
)
from authgate.passwords import PasswordHasher
from authgate.policy import normalize_password, normalize_username, parse_roles, username_key
from authgate.revocations import RevokedSessions
from authgate.storage import Database, Transaction
from authgate.throttle import Throttle
from authgate.tokens import TokenCodec

security_log = logging.getLogger("authgate.security")

#: Longest refresh token we look up; ours are 43 characters.
_MAX_REFRESH_TOKEN = 256


def require_role(claims: AccessClaims, role: Role) -> None:
    """The one role check, shared by routes and the service: each route asks for its own role."""
    if role not in claims.roles:
        raise RoleRequiredError(role)


def _digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class AuthService:
    """Sign-up, sign-in, refresh and sign-out, each one short transaction."""

    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher,
        tokens: TokenCodec,
        throttle: Throttle,
        revoked: RevokedSessions,
        *,
        accounts: Accounts,
        refresh_ttl_seconds: int,
        refresh_idle_ttl_seconds: int,
        refresh_rotation: bool,
        refresh_grace_seconds: int = 0,
        grace_key: bytes = b"",
        clock: Clock,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
    ) -> None:
        self.database = database
        self._hasher = hasher
        self._tokens = tokens
        self._throttle = throttle
        self.revoked = revoked  # the set every request checks
        self._accounts = accounts
        self._refresh_ttl = refresh_ttl_seconds
        self._refresh_idle = min(refresh_idle_ttl_seconds, refresh_ttl_seconds)
        self._rotation = refresh_rotation
        self._grace_seconds = refresh_grace_seconds
        # Without rotation a retry presents a token that still works: no window is needed.
        self._sealer = (
            Sealer(grace_key) if grace_key and refresh_grace_seconds and refresh_rotation else None
        )
        self._clock = clock
        self._new_secret = new_secret

    # -- access tokens -------------------------------------------------------

    def authenticate(self, token: str | None) -> AccessClaims:
        """Verified claims of a live session's access token; no database round trip."""
        if not token:
            raise MissingTokenError()
        claims = self._tokens.verify(token)
        if claims.session_id in self.revoked:
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
            async with self.database.transaction(read_only=True) as tx:
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
        refresh_token = self._new_secret()
        async with self.database.transaction() as tx:
            if upgraded is not None:
                await tx.users.set_password_hash(user.id, upgraded)
            await tx.sessions.create(
                session_id,
                user.id,
                now=now,
                expires_at=now + self._refresh_ttl,
                client_address=client,
                user_agent=user_agent,
            )
            await tx.refresh_tokens.insert(
                _digest(refresh_token),
                session_id,
                parent_id=None,
                now=now,
                expires_at=now + self._refresh_idle,
            )
        security_log.info(
            "sign_in.succeeded", extra={"event": "sign_in.succeeded", "user_id": user.id}
        )
        access_token = self._tokens.issue(user.id, user.roles, session_id, auth_time=now)
        return SignedIn(user=user, tokens=TokenPair(access_token, refresh_token))

    # -- refresh -------------------------------------------------------------

    async def refresh(self, refresh_token: str, *, client: str = "") -> TokenPair:
        """Spend ``refresh_token`` for a new pair; a spent token revokes its whole session."""
        await self._throttle.refresh_attempt(client)
        if not refresh_token or len(refresh_token) > _MAX_REFRESH_TOKEN:
            raise InvalidRefreshTokenError()
        now = int(self._clock())
        token_hash = _digest(refresh_token)
        successor = self._new_secret() if self._rotation else refresh_token
        if self._rotation:
            # The common case in as few round trips as the database allows. Anything else
            # wrote nothing there, and is classified in full below, in its own transaction.
            rotated = await self.database.rotate_refresh_token(
                token_hash,
                _digest(successor),
                now=now,
                idle_until=now + self._refresh_idle,
                sealed_token=self._sealed(successor),
            )
            if rotated is not None:
                return self._pair(*rotated, successor)
        async with self.database.transaction() as tx:
            record = await tx.refresh_tokens.find(token_hash)
            outcome = await self._spend(tx, record, successor, now)
        # Raised only after the commit: a revocation or a clean-up must persist.
        if isinstance(outcome, AuthError):
            raise outcome
        return self._pair(*outcome)

    def _pair(self, user: User, record: RefreshRecord, successor: str) -> TokenPair:
        access = self._tokens.issue(
            user.id, user.roles, record.session_id, auth_time=record.session_created_at
        )
        return TokenPair(access, successor)

    def _sealed(self, successor: str) -> str | None:
        """The successor sealed for the grace window, when there is one."""
        return None if self._sealer is None else self._sealer.seal(successor.encode())

    async def _spend(
        self, tx: Transaction, record: RefreshRecord | None, successor: str, now: int
    ) -> tuple[User, RefreshRecord, str] | AuthError:
        if record is None:
            return InvalidRefreshTokenError()
        if record.session_revoked_at is not None:
            return RefreshTokenRevokedError()
        if record.used_at is not None:
            return await self._spent_before(tx, record, now)
        if record.expires_at <= now:
            await tx.refresh_tokens.delete(record.id)
            return RefreshTokenExpiredError()
        # Each use buys one more idle period, never past the session's absolute expiry.
        expires_at = min(now + self._refresh_idle, record.session_expires_at)
        if self._rotation:
            if not await tx.refresh_tokens.spend(record.id, now=now):
                # A concurrent refresh spent it after our read (and has committed).
                return await self._spent_before(tx, record, now)
            await tx.refresh_tokens.insert(
                _digest(successor),
                record.session_id,
                parent_id=record.id,
                now=now,
                expires_at=expires_at,
                sealed_token=self._sealed(successor),
            )
        else:
            await tx.refresh_tokens.extend(record.id, expires_at=expires_at)
        return await self._owner(tx, record, successor, now)

    async def _spent_before(
        self, tx: Transaction, record: RefreshRecord, now: int
    ) -> tuple[User, RefreshRecord, str] | AuthError:
        """A token presented again: a retry within the grace window gets the successor it
        already has (even if the token's own idle expiry passed since); otherwise it is
        reuse, and the session ends."""
        repeated = await self._within_grace(tx, record, now)
        if repeated is not None:
            security_log.info(
                "refresh.repeated",
                extra={
                    "event": "refresh.repeated",
                    "user_id": record.user_id,
                    "session_id": record.session_id,
                },
            )
            return await self._owner(tx, record, repeated, now)
        if record.expires_at <= now:
            await tx.refresh_tokens.delete(record.id)
            return RefreshTokenExpiredError()
        await self._revoke(tx, record.session_id, now)
        security_log.warning(
            "refresh.reuse_detected",
            extra={
                "event": "refresh.reuse_detected",
                "user_id": record.user_id,
                "session_id": record.session_id,
            },
        )
        return RefreshTokenReusedError()

    async def _owner(
        self, tx: Transaction, record: RefreshRecord, successor: str, now: int
    ) -> tuple[User, RefreshRecord, str] | AuthError:
        user = await tx.users.get(record.user_id)
        if user is None or not user.enabled:
            await self._revoke(tx, record.session_id, now)
            return RefreshTokenRevokedError()
        await tx.sessions.touch(record.session_id, now=now)
        return user, record, successor

    async def _within_grace(self, tx: Transaction, record: RefreshRecord, now: int) -> str | None:
        """The successor already issued for ``record``, if the grace window allows repeating it:
        the token presented is the immediate parent of the newest token, which is unspent,
        unexpired and was issued within the window. Anything older is reuse."""
        if self._sealer is None:
            return None
        sealed = await tx.refresh_tokens.sealed_successor(
            record.id, created_since=now - self._grace_seconds, now=now
        )
        opened = None if sealed is None else self._sealer.open(sealed)
        return None if opened is None else opened.decode()

    # -- sign-out ------------------------------------------------------------

    async def sign_out(self, refresh_token: str) -> None:
        """Revoke the session the token belongs to; unknown tokens are silently accepted."""
        if not refresh_token or len(refresh_token) > _MAX_REFRESH_TOKEN:
            return
        now = int(self._clock())
        async with self.database.transaction() as tx:
            record = await tx.refresh_tokens.find(_digest(refresh_token))
            if record is None or not await self._revoke(tx, record.session_id, now):
                return
        security_log.info(
            "session.revoked",
            extra={
                "event": "session.revoked",
                "user_id": record.user_id,
                "session_id": record.session_id,
            },
        )

    # -- revocation ----------------------------------------------------------

    async def _revoke(self, tx: Transaction, session_id: str, now: int) -> bool:
        return await revoke_session(tx, self.revoked, session_id, now)
