"""Refresh and sign-out: spending a refresh token by the rule of ``refresh_rule``."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable

from authgate.accounts import revoke_session
from authgate.errors import (
    AuthError,
    InvalidRefreshTokenError,
    RefreshTokenExpiredError,
    RefreshTokenReusedError,
    RefreshTokenRevokedError,
)
from authgate.keys import Sealer
from authgate.models import Clock, RefreshRecord, TokenPair, User
from authgate.refresh_rule import (
    RefreshPolicy,
    Verdict,
    classify,
    expiry_moves,
    spent_verdict,
)
from authgate.revocations import RevokedSessions
from authgate.storage import Database, FastRefresh, Transaction
from authgate.throttle import Throttle
from authgate.tokens import TokenCodec

security_log = logging.getLogger("authgate.security")

#: Longest refresh token we look up; ours are 43 characters.
MAX_REFRESH_TOKEN = 256

_Outcome = tuple[User, RefreshRecord, str] | AuthError


def digest(refresh_token: str) -> str:
    """What is stored of a refresh token, and looked up by."""
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class RefreshService:
    """Refresh (rotating, or extending with rotation off) and sign-out.

    A refresh first tries the fast path (``storage.FastRefresh``: a live token, in as few
    round trips as the backend allows); anything else wrote nothing there and is classified
    in full on the detailed path, in a transaction of its own. ``fast_paths=False`` takes
    the detailed path every time (tests run every case through both).
    """

    def __init__(
        self,
        database: Database,
        tokens: TokenCodec,
        throttle: Throttle,
        revoked: RevokedSessions,
        *,
        policy: RefreshPolicy,
        grace_key: bytes = b"",
        clock: Clock,
        new_secret: Callable[[], str] = lambda: secrets.token_urlsafe(32),
        fast_paths: bool = True,
    ) -> None:
        self.policy = policy
        self._database = database
        self._tokens = tokens
        self._throttle = throttle
        self._revoked = revoked
        self._grace_key = grace_key
        self._sealer = Sealer(grace_key) if grace_key and policy.grace_window else None
        self._clock = clock
        self._new_secret = new_secret
        self._fast = FastRefresh(database) if fast_paths else None

    def detailed_only(self) -> RefreshService:
        """The same service without its fast paths."""
        return RefreshService(
            self._database,
            self._tokens,
            self._throttle,
            self._revoked,
            policy=self.policy,
            grace_key=self._grace_key,
            clock=self._clock,
            new_secret=self._new_secret,
            fast_paths=False,
        )

    def new_token(self) -> str:
        """A fresh refresh token (256 random bits)."""
        return self._new_secret()

    async def refresh(self, refresh_token: str, *, client: str = "") -> TokenPair:
        """Spend ``refresh_token`` for a new pair; a spent token revokes its whole session."""
        await self._throttle.refresh_attempt(client)
        if not refresh_token or len(refresh_token) > MAX_REFRESH_TOKEN:
            raise InvalidRefreshTokenError()
        now = int(self._clock())
        token_hash = digest(refresh_token)
        rotation = self.policy.rotation
        successor = self._new_secret() if rotation else refresh_token
        if self._fast is not None:
            idle_until = self.policy.idle_until(now)
            done = (
                await self._fast.rotate(
                    token_hash,
                    digest(successor),
                    now=now,
                    idle_until=idle_until,
                    sealed_token=self._sealed(successor),
                )
                if rotation
                else await self._fast.extend(token_hash, now=now, idle_until=idle_until)
            )
            if done is not None:
                return self._pair(*done, successor)
        async with self._database.transaction() as tx:
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

    # -- the detailed path ---------------------------------------------------

    async def _spend(
        self, tx: Transaction, record: RefreshRecord | None, successor: str, now: int
    ) -> _Outcome:
        verdict = classify(record, now)
        if record is None or verdict is Verdict.UNKNOWN:
            return InvalidRefreshTokenError()
        if verdict is Verdict.REVOKED:
            return RefreshTokenRevokedError()
        if verdict is Verdict.SPENT:
            return await self._spent_before(tx, record, now)
        if verdict is Verdict.EXPIRED:
            await tx.refresh_tokens.delete(record.id)
            return RefreshTokenExpiredError()
        if verdict is Verdict.OWNER_GONE:
            await self._revoke(tx, record.session_id, now)
            return RefreshTokenRevokedError()
        expires_at = self.policy.expires_at(now, record.session_expires_at)
        if self.policy.rotation:
            if not await tx.refresh_tokens.spend(record.id, now=now):
                # A concurrent refresh spent it after our read (and has committed).
                return await self._spent_before(tx, record, now)
            await tx.refresh_tokens.insert(
                digest(successor),
                record.session_id,
                parent_id=record.id,
                now=now,
                expires_at=expires_at,
                sealed_token=self._sealed(successor),
            )
        elif expiry_moves(record.expires_at, expires_at):
            await tx.refresh_tokens.extend(record.id, expires_at=expires_at)
        return await self._owner(tx, record, successor, now)

    async def _spent_before(self, tx: Transaction, record: RefreshRecord, now: int) -> _Outcome:
        """A token presented again: a retry within the grace window gets the successor it
        already has (even if the token's own idle expiry passed since); otherwise it is
        reuse, and the session ends."""
        repeated = await self._within_grace(tx, record, now)
        verdict = spent_verdict(record, now, successor_repeatable=repeated is not None)
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
        if verdict is Verdict.EXPIRED:
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
    ) -> _Outcome:
        """The owner, read again for the access token's roles (and in case it was disabled
        since the token was read); its session stamped."""
        user = await tx.users.get(record.user_id)
        if user is None or not user.enabled:
            await self._revoke(tx, record.session_id, now)
            return RefreshTokenRevokedError()
        await tx.refresh_tokens.touch_session(record.session_id, now=now)
        return user, record, successor

    async def _within_grace(self, tx: Transaction, record: RefreshRecord, now: int) -> str | None:
        """The successor already issued for ``record``, if the grace window allows repeating it:
        the token presented is the immediate parent of the newest token, which is unspent,
        unexpired and was issued within the window. Anything older is reuse."""
        if self._sealer is None:
            return None
        sealed = await tx.refresh_tokens.sealed_successor(
            record.id, created_since=now - self.policy.grace_seconds, now=now
        )
        opened = None if sealed is None else self._sealer.open(sealed)
        return None if opened is None else opened.decode()

    # -- sign-out ------------------------------------------------------------

    async def sign_out(self, refresh_token: str) -> None:
        """Revoke the session the token belongs to; unknown tokens are silently accepted."""
        if not refresh_token or len(refresh_token) > MAX_REFRESH_TOKEN:
            return
        now = int(self._clock())
        async with self._database.transaction() as tx:
            record = await tx.refresh_tokens.find(digest(refresh_token))
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

    async def _revoke(self, tx: Transaction, session_id: str, now: int) -> bool:
        return await revoke_session(tx, self._revoked, session_id, now)
