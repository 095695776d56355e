"""What admins do to other accounts, every action written to the audit log.

An admin is checked against the database on every call (not only the token's roles), so
a demoted or disabled admin loses these powers at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from authgate.accounts import apply_roles, keep_an_admin, revoke_owned_session, revoke_sessions
from authgate.errors import RoleRequiredError, SelfLockoutError, UserNotFoundError
from authgate.models import AccessClaims, AuditEntry, Clock, Role, SessionInfo, User
from authgate.policy import parse_roles
from authgate.revocations import RevokedSessions
from authgate.storage import Database, Transaction

security_log = logging.getLogger("authgate.security")


class Admin:
    def __init__(self, database: Database, revoked: RevokedSessions, *, clock: Clock) -> None:
        self._database = database
        self._revoked = revoked
        self._clock = clock

    async def users(
        self,
        actor: AccessClaims,
        client: str,
        *,
        search: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> list[User]:
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "users.search", None, f"q={search[:64]}")
            return await tx.users.search(search, limit=limit, offset=offset)

    async def user(self, actor: AccessClaims, client: str, user_id: int) -> User:
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "users.read", user_id)
            return await _target(tx, user_id)

    async def set_roles(
        self, actor: AccessClaims, client: str, user_id: int, roles: Iterable[str]
    ) -> User:
        wanted = parse_roles(roles)
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await self._audit(
                tx, actor, client, "users.set_roles", user_id, ",".join(sorted(wanted))
            )
            await apply_roles(tx, self._revoked, await _target(tx, user_id), wanted, now)
            return await _target(tx, user_id)

    async def set_enabled(
        self, actor: AccessClaims, client: str, user_id: int, enabled: bool
    ) -> User:
        now = int(self._clock())
        action = "users.enable" if enabled else "users.disable"
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, action, user_id)
            user = await _target(tx, user_id)
            if not enabled:
                _not_yourself(actor, user)
                await keep_an_admin(tx, user, stays_admin=False)
            await tx.users.set_enabled(user.id, enabled)
            if not enabled:
                await revoke_sessions(tx, self._revoked, user.id, now)
            return await _target(tx, user_id)

    async def delete(self, actor: AccessClaims, client: str, user_id: int) -> None:
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "users.delete", user_id)
            user = await _target(tx, user_id)
            _not_yourself(actor, user)
            await keep_an_admin(tx, user, stays_admin=False)
            await revoke_sessions(tx, self._revoked, user.id, now)
            await tx.users.anonymize(user.id)

    async def sessions(self, actor: AccessClaims, client: str, user_id: int) -> list[SessionInfo]:
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "sessions.list", user_id)
            await _target(tx, user_id)
            return await tx.sessions.live_of_user(user_id, now=int(self._clock()))

    async def revoke_session(
        self, actor: AccessClaims, client: str, user_id: int, session_id: str
    ) -> None:
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "sessions.revoke", user_id, session_id)
            await revoke_owned_session(tx, self._revoked, session_id, user_id, now)

    async def audit_log(
        self, actor: AccessClaims, client: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "audit.read", None)
            return await tx.audit.recent(limit=limit, before_id=before_id)

    async def _audit(
        self,
        tx: Transaction,
        actor: AccessClaims,
        client: str,
        action: str,
        target_user_id: int | None,
        detail: str = "",
    ) -> None:
        """Check the actor is an enabled admin *now*, then record the action (same transaction:
        no action without its record)."""
        admin = await tx.users.get(actor.user_id)
        if admin is None or not admin.enabled or Role.ADMIN not in admin.roles:
            raise RoleRequiredError(Role.ADMIN)
        await tx.audit.add(
            at=int(self._clock()),
            actor_id=admin.id,
            action=action,
            target_user_id=target_user_id,
            detail=detail,
            client_address=client,
        )
        security_log.info(
            "admin." + action,
            extra={"event": "admin." + action, "user_id": admin.id},
        )


def _not_yourself(actor: AccessClaims, user: User) -> None:
    """An admin who disables or deletes their own account loses the session they act from;
    nearly always a slip, so refused (account deletion has its own, re-authenticated route)."""
    if user.id == actor.user_id:
        raise SelfLockoutError()


async def _target(tx: Transaction, user_id: int) -> User:
    user = await tx.users.get(user_id)
    if user is None:
        raise UserNotFoundError()
    return user
