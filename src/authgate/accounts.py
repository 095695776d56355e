"""Accounts: creating one (sign-up and operators alike), and what a signed-in user does to
their own: sessions, password, email, deletion.

Sensitive operations (changing the password or email, deleting the account, signing out
everywhere) need a fresh proof of the password: ``currentPassword`` in the request, or an
access token whose session signed in with the password within
``AUTHGATE_REAUTHENTICATION_WINDOW_SECONDS`` (its ``auth_time`` claim).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from authgate.errors import (
    LastAdminError,
    ReauthenticationRequiredError,
    SessionNotFoundError,
    UserNotFoundError,
)
from authgate.models import AccessClaims, Clock, NewUser, Role, SessionInfo, User
from authgate.passwords import PasswordHasher
from authgate.policy import (
    check_password,
    email_key,
    new_username,
    normalize_email,
    normalize_password,
    username_key,
)
from authgate.revocations import RevokedSessions
from authgate.storage import Database, Transaction
from authgate.throttle import Throttle

security_log = logging.getLogger("authgate.security")


async def revoke_sessions(
    tx: Transaction,
    revoked: RevokedSessions,
    user_id: int,
    now: int,
    *,
    keep: str | None = None,
) -> list[str]:
    """Revoke every live session of a user (but ``keep``), in the database and in memory."""
    ids = [s.id for s in await tx.sessions.live_of_user(user_id, now=now) if s.id != keep]
    for session_id in ids:
        await revoke_session(tx, revoked, session_id, now)
    return ids


async def revoke_session(
    tx: Transaction, revoked: RevokedSessions, session_id: str, now: int
) -> bool:
    """The one way a session ends: in the database and, at once, in this process's memory
    (and so, through the bus, in the others'). Memory first is harmless if the transaction
    rolls back: only the access tokens of a session its owner was ending are refused.
    False if it was revoked already."""
    revoked.add(session_id, now)
    return await tx.sessions.revoke(session_id, now=now)


async def revoke_owned_session(
    tx: Transaction, revoked: RevokedSessions, session_id: str, user_id: int, now: int
) -> None:
    """Revoke ``user_id``'s live session; anyone else's, or none, is "not found" alike."""
    found = await tx.sessions.get(session_id)
    if found is None or found.user_id != user_id or found.revoked_at is not None:
        raise SessionNotFoundError()
    await revoke_session(tx, revoked, session_id, now)


async def apply_roles(
    tx: Transaction, revoked: RevokedSessions, user: User, wanted: frozenset[Role], now: int
) -> None:
    """Replace a user's roles. Taking a role away ends their sessions at once (their tokens
    carry the old roles); a role given arrives with their next refresh."""
    await keep_an_admin(tx, user, stays_admin=Role.ADMIN in wanted)
    await tx.users.set_roles(user.id, wanted)
    if user.roles - wanted:
        await revoke_sessions(tx, revoked, user.id, now)


async def keep_an_admin(tx: Transaction, user: User, *, stays_admin: bool) -> None:
    """Refuse a change after which ``user`` is no longer an enabled admin when they are the
    last one (LastAdminError): the one rule for the admin API, the CLI and account deletion."""
    if stays_admin:
        return
    admins = await tx.users.enabled_admin_ids()
    if admins == {user.id}:
        raise LastAdminError()


class Accounts:
    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher,
        throttle: Throttle,
        revoked: RevokedSessions,
        *,
        reauthentication_window_seconds: int,
        password_min_length: int,
        password_max_length: int,
        clock: Clock,
    ) -> None:
        self._database = database
        self._hasher = hasher
        self._throttle = throttle
        self._revoked = revoked
        self._window = reauthentication_window_seconds
        self._password_min = password_min_length
        self._password_max = password_max_length
        self._clock = clock

    # -- creation ----------------------------------------------------------------

    async def create(
        self,
        username: str,
        email: str,
        password: str,
        roles: frozenset[Role],
        *,
        audit: Callable[[Transaction, int], Awaitable[None]] | None = None,
    ) -> int:
        """The one way a user is made: the name, email and password rules, then the insert.
        Callers decide who may ask for ``roles``; ``audit`` (given the new id) writes their
        record in the insert's transaction, so there is no user without it."""
        name = new_username(username)
        address = normalize_email(email)
        secret = normalize_password(password)
        check_password(secret, min_length=self._password_min, max_length=self._password_max)
        name_key, address_key = username_key(name), email_key(address)
        # Cheap checks first, so a duplicate costs no hash; the unique indexes decide races.
        async with self._database.transaction(read_only=True) as tx:
            await tx.users.check_free(username_key=name_key, email_key=address_key)
        password_hash = await self._hasher.hash(secret)
        async with self._database.transaction() as tx:
            user_id = await tx.users.insert(
                NewUser(username=name, email=address, password_hash=password_hash, roles=roles),
                username_key=name_key,
                email_key=address_key,
                now=int(self._clock()),
            )
            if audit is not None:
                await audit(tx, user_id)
        _event("user.created", user_id)
        return user_id

    # -- sessions --------------------------------------------------------------

    async def sessions(self, claims: AccessClaims) -> list[SessionInfo]:
        async with self._database.transaction(read_only=True) as tx:
            return await tx.sessions.live_of_user(claims.user_id, now=int(self._clock()))

    async def revoke_session(self, claims: AccessClaims, session_id: str) -> None:
        """Revoke one of the caller's sessions; someone else's is "not found", like none."""
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await revoke_owned_session(tx, self._revoked, session_id, claims.user_id, now)
        _event("session.revoked", claims.user_id)

    async def sign_out(self, claims: AccessClaims) -> None:
        """End the session the access token belongs to."""
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await revoke_session(tx, self._revoked, claims.session_id, now)
        _event("session.revoked", claims.user_id)

    async def sign_out_everywhere(
        self, claims: AccessClaims, current_password: str | None, *, client: str = ""
    ) -> int:
        await self._reauthenticate(claims, current_password, client)
        now = int(self._clock())
        async with self._database.transaction() as tx:
            ended = await revoke_sessions(tx, self._revoked, claims.user_id, now)
        _event("sessions.revoked_all", claims.user_id)
        return len(ended)

    # -- credentials ------------------------------------------------------------

    async def change_password(
        self,
        claims: AccessClaims,
        current_password: str | None,
        new_password: str,
        *,
        client: str = "",
    ) -> None:
        """New password; every other session ends (this one stays signed in)."""
        user = await self._reauthenticate(claims, current_password, client)
        secret = normalize_password(new_password)
        check_password(secret, min_length=self._password_min, max_length=self._password_max)
        password_hash = await self._hasher.hash(secret)
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await tx.users.set_password_hash(user.id, password_hash)
            await revoke_sessions(tx, self._revoked, user.id, now, keep=claims.session_id)
        _event("user.password_changed", user.id)

    async def change_email(
        self, claims: AccessClaims, current_password: str | None, email: str, *, client: str = ""
    ) -> None:
        """A taken address answers "already in use", so each try spends the sign-up budget."""
        await self._throttle.email_attempt(client)
        user = await self._reauthenticate(claims, current_password, client)
        address = normalize_email(email)
        async with self._database.transaction() as tx:
            await tx.users.set_email(user.id, address, email_key(address))
        _event("user.email_changed", user.id)

    async def delete(
        self, claims: AccessClaims, current_password: str | None, *, client: str = ""
    ) -> None:
        """Remove every personal field, end every session; the name becomes free again."""
        user = await self._reauthenticate(claims, current_password, client)
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await keep_an_admin(tx, user, stays_admin=False)
            await revoke_sessions(tx, self._revoked, user.id, now)
            await tx.users.anonymize(user.id)
        _event("user.deleted", user.id)

    async def _reauthenticate(
        self, claims: AccessClaims, current_password: str | None, client: str
    ) -> User:
        async with self._database.transaction(read_only=True) as tx:
            user = await tx.users.get(claims.user_id)
        if user is None or not user.enabled:
            raise UserNotFoundError()
        if current_password is not None:
            # The same budget as sign-in's: a stolen token cannot be used to guess the password.
            account = username_key(user.username)
            await self._throttle.password_attempt(client, account)
            if await self._hasher.verify(user.password_hash, normalize_password(current_password)):
                return user
            await self._throttle.sign_in_failed(client, account)
            raise ReauthenticationRequiredError()
        signed_in_at = claims.authenticated_at
        if signed_in_at is None or self._clock() - signed_in_at > self._window:
            raise ReauthenticationRequiredError()
        return user


def _event(name: str, user_id: int) -> None:
    security_log.info(name, extra={"event": name, "user_id": user_id})
