"""What admins and operators do to other accounts, every action written to the audit log.

A token's admin is checked against the database on every call (not only the token's roles),
so a demoted or disabled admin loses these powers at once. An operator at the server's
command line (``authgate users ...``) holds the database already: trusted without a token,
and recorded with no actor id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from authgate.accounts import (
    Accounts,
    apply_roles,
    keep_an_admin,
    revoke_owned_session,
    revoke_sessions,
)
from authgate.errors import RoleRequiredError, SelfLockoutError, UserNotFoundError
from authgate.models import AccessClaims, AuditEntry, Clock, Role, SessionInfo, User
from authgate.policy import normalize_username, parse_roles, username_key
from authgate.revocations import RevokedSessions
from authgate.storage import Database, Transaction

security_log = logging.getLogger("authgate.security")


@dataclass(frozen=True)
class Operator:
    """Whoever runs ``authgate users ...``: an admin by access to the server, not by token."""


OPERATOR = Operator()

#: Who acts: an admin's verified token (the admin API), or the operator (the CLI).
Actor = AccessClaims | Operator

#: A user named by id (the admin API) or by username (the CLI).
UserRef = int | str


class Admin:
    def __init__(
        self, database: Database, revoked: RevokedSessions, accounts: Accounts, *, clock: Clock
    ) -> None:
        self._database = database
        self._revoked = revoked
        self._accounts = accounts
        self._clock = clock

    async def create_user(
        self,
        actor: Actor,
        client: str,
        username: str,
        email: str,
        password: str,
        roles: Iterable[str],
    ) -> int:
        """A user with any roles, under sign-up's name and password rules."""
        wanted = parse_roles(roles)

        async def audit(tx: Transaction, user_id: int) -> None:
            await self._audit(tx, actor, client, "users.create", user_id, _roles(wanted))

        return await self._accounts.create(username, email, password, wanted, audit=audit)

    async def users(
        self,
        actor: Actor,
        client: str,
        *,
        search: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> list[User]:
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "users.search", None, f"q={search[:64]}")
            return await tx.users.search(search, limit=limit, offset=offset)

    async def every_user(self, _operator: Operator) -> list[User]:
        """Every user, by id (``authgate users list``): a read the operator makes with the
        database in hand, so, unlike their changes, not audited."""
        async with self._database.transaction(read_only=True) as tx:
            return await tx.users.list_all()

    async def user(self, actor: Actor, client: str, user: UserRef) -> User:
        async with self._database.transaction() as tx:
            return await self._audited(tx, actor, client, "users.read", user)

    async def set_roles(
        self, actor: Actor, client: str, user: UserRef, roles: Iterable[str]
    ) -> User:
        wanted = parse_roles(roles)
        now = int(self._clock())
        async with self._database.transaction() as tx:
            target = await self._audited(tx, actor, client, "users.set_roles", user, _roles(wanted))
            await apply_roles(tx, self._revoked, target, wanted, now)
            updated = await _target(tx, target.id)
        _event("user.roles_changed", target.id)
        return updated

    async def set_enabled(self, actor: Actor, client: str, user: UserRef, enabled: bool) -> User:
        """Disable (every session revoked at once) or re-enable an account."""
        now = int(self._clock())
        action = "users.enable" if enabled else "users.disable"
        async with self._database.transaction() as tx:
            target = await self._audited(tx, actor, client, action, user)
            if not enabled:
                _not_yourself(actor, target)
                await keep_an_admin(tx, target, stays_admin=False)
            await tx.users.set_enabled(target.id, enabled)
            if not enabled:
                await revoke_sessions(tx, self._revoked, target.id, now)
            updated = await _target(tx, target.id)
        _event("user.enabled" if enabled else "user.disabled", target.id)
        return updated

    async def delete(self, actor: Actor, client: str, user: UserRef) -> None:
        now = int(self._clock())
        async with self._database.transaction() as tx:
            target = await self._audited(tx, actor, client, "users.delete", user)
            _not_yourself(actor, target)
            await keep_an_admin(tx, target, stays_admin=False)
            await revoke_sessions(tx, self._revoked, target.id, now)
            await tx.users.anonymize(target.id)

    async def sessions(self, actor: Actor, client: str, user: UserRef) -> list[SessionInfo]:
        async with self._database.transaction() as tx:
            target = await self._audited(tx, actor, client, "sessions.list", user)
            return await tx.sessions.live_of_user(target.id, now=int(self._clock()))

    async def revoke_session(
        self, actor: Actor, client: str, user_id: int, session_id: str
    ) -> None:
        now = int(self._clock())
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "sessions.revoke", user_id, session_id)
            await revoke_owned_session(tx, self._revoked, session_id, user_id, now)

    async def audit_log(
        self, actor: Actor, client: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[AuditEntry]:
        async with self._database.transaction() as tx:
            await self._audit(tx, actor, client, "audit.read", None)
            return await tx.audit.recent(limit=limit, before_id=before_id)

    async def _audited(
        self,
        tx: Transaction,
        actor: Actor,
        client: str,
        action: str,
        user: UserRef,
        detail: str = "",
    ) -> User:
        """The target of ``action``, once the actor is checked and the action recorded (a
        caller who may not act learns nothing of who exists)."""
        actor_id = await _acting_admin(tx, actor)
        target = await _target(tx, user)
        await self._record(tx, actor_id, client, action, target.id, detail)
        return target

    async def _audit(
        self,
        tx: Transaction,
        actor: Actor,
        client: str,
        action: str,
        target_user_id: int | None,
        detail: str = "",
    ) -> None:
        """Check the actor may act *now*, then record the action (same transaction: no
        action without its record)."""
        actor_id = await _acting_admin(tx, actor)
        await self._record(tx, actor_id, client, action, target_user_id, detail)

    async def _record(
        self,
        tx: Transaction,
        actor_id: int | None,
        client: str,
        action: str,
        target_user_id: int | None,
        detail: str,
    ) -> None:
        await tx.audit.add(
            at=int(self._clock()),
            actor_id=actor_id,
            action=action,
            target_user_id=target_user_id,
            detail=detail,
            client_address=client,
        )
        _event("admin." + action, actor_id)


async def _acting_admin(tx: Transaction, actor: Actor) -> int | None:
    """The acting admin's id, read again from the database (None for the operator)."""
    if isinstance(actor, Operator):
        return None
    admin = await tx.users.get(actor.user_id)
    if admin is None or not admin.enabled or Role.ADMIN not in admin.roles:
        raise RoleRequiredError(Role.ADMIN)
    return admin.id


def _not_yourself(actor: Actor, user: User) -> None:
    """An admin who disables or deletes their own account loses the session they act from;
    nearly always a slip, so refused (account deletion has its own, re-authenticated route)."""
    if isinstance(actor, AccessClaims) and user.id == actor.user_id:
        raise SelfLockoutError()


async def _target(tx: Transaction, user: UserRef) -> User:
    if isinstance(user, int):
        found = await tx.users.get(user)
    else:
        found = await tx.users.get_by_username_key(username_key(normalize_username(user)))
    if found is None:
        raise UserNotFoundError()
    return found


def _roles(roles: frozenset[Role]) -> str:
    return ",".join(sorted(roles))


def _event(name: str, user_id: int | None) -> None:
    security_log.info(name, extra={"event": name, "user_id": user_id})
