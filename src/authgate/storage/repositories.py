"""Repositories: the SQL for users, sessions, signing keys and the audit log (refresh tokens
have ``refresh_tokens.py``). They never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from authgate.errors import EmailTakenError, UsernameTakenError
from authgate.models import (
    AuditEntry,
    NewUser,
    Role,
    SessionInfo,
    StoredKey,
    User,
)
from authgate.storage.tables import (
    audit_log,
    refresh_tokens,
    sessions,
    signing_keys,
    user_roles,
    users,
)

#: Fixed ids, as in the tutorial's seed data; created by the first migration.
ROLE_IDS = {Role.USER: 1, Role.MODERATOR: 2, Role.ADMIN: 3}
ROLE_BY_ID = {v: k for k, v in ROLE_IDS.items()}

USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.email,
    users.c.password_hash,
    users.c.enabled,
    user_roles.c.role_id,
)


def _users_from_rows(rows: Sequence[Any]) -> list[User]:
    grouped: dict[int, tuple[Any, set[Role]]] = {}
    for row in rows:
        entry = grouped.setdefault(row.id, (row, set()))
        if row.role_id is not None:
            entry[1].add(ROLE_BY_ID[row.role_id])
    return [
        User(
            id=row.id,
            username=row.username,
            email=row.email,
            roles=frozenset(found),
            password_hash=row.password_hash,
            enabled=bool(row.enabled),
        )
        for row, found in grouped.values()
    ]


# Statements of the refresh path, built once: constructing them per call cost more Python
# time than the database spent on them (docs/benchmarks.md).
USER_BY_ID = (
    sa.select(*USER_COLUMNS)
    .select_from(users.outerjoin(user_roles))
    .where(users.c.id == sa.bindparam("user_id"))
    .order_by(users.c.id)
)
TOUCH_SESSION = (
    sessions.update()
    .where(sessions.c.id == sa.bindparam("session_id"))
    .values(last_used_at=sa.bindparam("now"))
)
# ... and of sign-up and sign-in, for the same reason. An INSERT given its values as
# parameters compiles once per set of keys and is then found in the statement cache; one built
# with ``.values(...)`` is a new statement whose cache key is generated on every call.
_USERS_SELECT = sa.select(*USER_COLUMNS).select_from(users.outerjoin(user_roles))
USER_BY_USERNAME_KEY = _USERS_SELECT.where(
    users.c.username_key == sa.bindparam("username_key")
).order_by(users.c.id)
#: Who holds a username key or an email key, if anyone: one lookup for both (two unique indexes).
HOLDERS_OF_KEYS = (
    sa.select(users.c.username_key)
    .where(
        sa.or_(
            users.c.username_key == sa.bindparam("username_key"),
            users.c.email_key == sa.bindparam("email_key"),
        )
    )
    .limit(2)
)
USERNAME_KEY_EXISTS = sa.select(users.c.id).where(
    users.c.username_key == sa.bindparam("username_key")
)
EMAIL_KEY_EXISTS = sa.select(users.c.id).where(users.c.email_key == sa.bindparam("email_key"))
INSERT_USER = users.insert()
INSERT_USER_ROLE = user_roles.insert()
INSERT_SESSION = sessions.insert()


class Users:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    def _select(self) -> sa.Select[tuple[int, str, str, str, bool, int | None]]:
        return _USERS_SELECT.order_by(users.c.id)

    async def get_by_username_key(self, key: str) -> User | None:
        rows = (await self._c.execute(USER_BY_USERNAME_KEY, {"username_key": key})).all()
        found = _users_from_rows(rows)
        return found[0] if found else None

    async def get(self, user_id: int) -> User | None:
        rows = (await self._c.execute(USER_BY_ID, {"user_id": user_id})).all()
        found = _users_from_rows(rows)
        return found[0] if found else None

    async def list_all(self) -> list[User]:
        return _users_from_rows((await self._c.execute(self._select())).all())

    async def username_key_exists(self, key: str) -> bool:
        found = await self._c.execute(USERNAME_KEY_EXISTS, {"username_key": key})
        return found.first() is not None

    async def email_key_exists(self, key: str) -> bool:
        found = await self._c.execute(EMAIL_KEY_EXISTS, {"email_key": key})
        return found.first() is not None

    async def check_free(self, *, username_key: str, email_key: str) -> None:
        """UsernameTakenError if the username key is held, else EmailTakenError if the
        email key is: one query for both."""
        held = (
            await self._c.execute(
                HOLDERS_OF_KEYS, {"username_key": username_key, "email_key": email_key}
            )
        ).scalars()
        found = list(held)
        if username_key in found:
            raise UsernameTakenError()
        if found:
            raise EmailTakenError()

    async def insert(self, new: NewUser, *, username_key: str, email_key: str, now: int) -> int:
        """Insert the user and their roles; a clash becomes Username/EmailTakenError."""
        try:
            async with self._c.begin_nested():
                result = await self._c.execute(
                    INSERT_USER,
                    {
                        "username": new.username,
                        "username_key": username_key,
                        "email": new.email,
                        "email_key": email_key,
                        "password_hash": new.password_hash,
                        "created_at": now,
                    },
                )
        except sa.exc.IntegrityError:
            if await self.username_key_exists(username_key):
                raise UsernameTakenError() from None
            raise EmailTakenError() from None
        (inserted,) = result.inserted_primary_key or (0,)
        user_id = int(inserted)
        for role in sorted(set(new.roles)):  # a new user has no roles to replace
            await self._c.execute(INSERT_USER_ROLE, {"user_id": user_id, "role_id": ROLE_IDS[role]})
        return user_id

    async def set_roles(self, user_id: int, new_roles: Iterable[Role]) -> None:
        await self._c.execute(user_roles.delete().where(user_roles.c.user_id == user_id))
        rows = [{"user_id": user_id, "role_id": ROLE_IDS[role]} for role in sorted(set(new_roles))]
        if rows:
            await self._c.execute(user_roles.insert(), rows)

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._c.execute(
            users.update().where(users.c.id == user_id).values(password_hash=password_hash)
        )

    async def set_enabled(self, user_id: int, enabled: bool) -> None:
        await self._c.execute(users.update().where(users.c.id == user_id).values(enabled=enabled))

    async def anonymize(self, user_id: int) -> None:
        """Deletion that keeps the row (so its sessions stay revoked until purged): every
        personal field is replaced, the name and email become free again, no password works."""
        tombstone = f"deleted-{user_id}"
        await self._c.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(
                username=tombstone,
                username_key=tombstone,
                email=f"{tombstone}@invalid",
                email_key=f"{tombstone}@invalid",
                password_hash="!",  # noqa: S106 - not a hash: nothing ever verifies against it
                enabled=False,
            )
        )
        await self.set_roles(user_id, [])

    async def set_email(self, user_id: int, email: str, email_key: str) -> None:
        """Change the address; a clash becomes EmailTakenError."""
        try:
            async with self._c.begin_nested():
                await self._c.execute(
                    users.update()
                    .where(users.c.id == user_id)
                    .values(email=email, email_key=email_key)
                )
        except sa.exc.IntegrityError:
            raise EmailTakenError() from None

    async def enabled_admin_ids(self) -> set[int]:
        """The ids of enabled admins, their rows locked until the transaction ends (SQLite
        has one writer anyway): two transactions that each remove a different admin cannot
        both see the other one still there."""
        query = (
            sa.select(users.c.id)
            .join(user_roles, user_roles.c.user_id == users.c.id)
            .where(users.c.enabled == sa.true(), user_roles.c.role_id == ROLE_IDS[Role.ADMIN])
            .order_by(users.c.id)  # every transaction locks in the same order: no deadlock
            .with_for_update()
        )
        return set((await self._c.execute(query)).scalars())

    async def search(self, text: str, *, limit: int, offset: int) -> list[User]:
        """Users whose name or email contains ``text`` (case-insensitive), by id."""
        pattern = "%" + text.casefold().replace("\\", "").replace("%", "").replace("_", "") + "%"
        ids = (
            sa.select(users.c.id)
            .where(sa.or_(users.c.username_key.like(pattern), users.c.email_key.like(pattern)))
            .order_by(users.c.id)
            .limit(limit)
            .offset(offset)
        )
        found = list((await self._c.execute(ids)).scalars())
        if not found:
            return []
        rows = (await self._c.execute(self._select().where(users.c.id.in_(found)))).all()
        return _users_from_rows(rows)


class Sessions:
    """A session is the family of refresh tokens descended from one sign-in."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def create(
        self,
        session_id: str,
        user_id: int,
        *,
        now: int,
        expires_at: int,
        client_address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        await self._c.execute(
            INSERT_SESSION,
            {
                "id": session_id,
                "user_id": user_id,
                "created_at": now,
                "expires_at": expires_at,
                "last_used_at": now,
                "client_address": (client_address or None) and client_address[:64],
                "user_agent": (user_agent or None) and user_agent[:256],
            },
        )

    async def count_live(self, *, now: int) -> int:
        query = sa.select(sa.func.count()).where(
            sessions.c.revoked_at.is_(None), sessions.c.expires_at > now
        )
        return int((await self._c.execute(query)).scalar_one())

    async def touch(self, session_id: str, *, now: int) -> None:
        await self._c.execute(TOUCH_SESSION, {"session_id": session_id, "now": now})

    async def get(self, session_id: str) -> SessionInfo | None:
        row = (
            await self._c.execute(sa.select(sessions).where(sessions.c.id == session_id))
        ).first()
        return None if row is None else _session(row)

    async def live_of_user(self, user_id: int, *, now: int) -> list[SessionInfo]:
        query = (
            sa.select(sessions)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
            )
            .order_by(sessions.c.created_at.desc())
        )
        return [_session(row) for row in await self._c.execute(query)]

    async def purge(self, *, now: int, keep_revoked_seconds: int) -> int:
        """Delete expired sessions, and revoked ones once nobody needs to learn of the
        revocation; their refresh tokens go with them (ON DELETE CASCADE)."""
        doomed = sa.or_(
            sessions.c.expires_at <= now,
            sessions.c.revoked_at <= now - keep_revoked_seconds,
        )
        ids = list((await self._c.execute(sa.select(sessions.c.id).where(doomed))).scalars())
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            await self._c.execute(
                refresh_tokens.delete().where(refresh_tokens.c.session_id.in_(chunk))
            )
            await self._c.execute(sessions.delete().where(sessions.c.id.in_(chunk)))
        return len(ids)

    async def revoked_since(self, since: int) -> list[tuple[str, int]]:
        """(id, revoked_at) of sessions revoked at or after ``since`` (indexed)."""
        query = sa.select(sessions.c.id, sessions.c.revoked_at).where(
            sessions.c.revoked_at >= since
        )
        return [(row.id, row.revoked_at) for row in await self._c.execute(query)]

    async def revoke(self, session_id: str, *, now: int) -> bool:
        result = await self._c.execute(
            sessions.update()
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return result.rowcount == 1


def _session(row: sa.Row[Any]) -> SessionInfo:
    return SessionInfo(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        client_address=row.client_address,
        user_agent=row.user_agent,
        revoked_at=row.revoked_at,
    )


class SigningKeyRecords:
    """Rows of ``signing_keys``; the crypto lives in ``keys.py``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def list(self, algorithm: str | None = None) -> list[StoredKey]:
        """The keys of ``algorithm`` (of every algorithm without one), oldest first."""
        query = sa.select(signing_keys).order_by(signing_keys.c.generation)
        if algorithm is not None:
            query = query.where(signing_keys.c.algorithm == algorithm)
        return [
            StoredKey(
                kid=row.kid,
                generation=row.generation,
                algorithm=row.algorithm,
                public_jwk=row.public_jwk,
                sealed_private_jwk=row.sealed_private_jwk,
                created_at=row.created_at,
                activates_at=row.activates_at,
            )
            for row in await self._c.execute(query)
        ]

    async def newest_generation(self) -> int:
        query = sa.select(sa.func.coalesce(sa.func.max(signing_keys.c.generation), 0))
        return int((await self._c.execute(query)).scalar_one())

    async def insert(self, key: StoredKey) -> bool:
        """False if another process took this generation first."""
        try:
            async with self._c.begin_nested():
                await self._c.execute(
                    signing_keys.insert().values(
                        kid=key.kid,
                        generation=key.generation,
                        algorithm=key.algorithm,
                        public_jwk=key.public_jwk,
                        sealed_private_jwk=key.sealed_private_jwk,
                        created_at=key.created_at,
                        activates_at=key.activates_at,
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True


class AuditLog:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    async def add(
        self,
        *,
        at: int,
        actor_id: int | None,
        action: str,
        target_user_id: int | None,
        detail: str = "",
        client_address: str | None = None,
    ) -> None:
        await self._c.execute(
            audit_log.insert().values(
                at=at,
                actor_id=actor_id,
                action=action,
                target_user_id=target_user_id,
                detail=detail[:512],
                client_address=(client_address or None) and client_address[:64],
            )
        )

    async def recent(self, *, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        return [
            AuditEntry(
                id=row.id,
                at=row.at,
                actor_id=row.actor_id,
                action=row.action,
                target_user_id=row.target_user_id,
                detail=row.detail,
                client_address=row.client_address,
            )
            for row in await self._c.execute(query)
        ]
