"""Refresh tokens: finding and spending them, and the refresh rule's SQL form. Never commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from authgate.models import RefreshRecord, User
from authgate.refresh_rule import LIVENESS, Check, Condition, capped, last_use_due
from authgate.storage.repositories import ROLE_BY_ID
from authgate.storage.tables import refresh_tokens, sessions, users

# -- the refresh rule in SQL -----------------------------------------------------------------
# refresh_rule.LIVENESS names fields; these are their columns. The fast statements' WHERE is
# generated from the conditions, and ``find`` selects the same columns under the same names,
# so the detailed path evaluates the very conditions the fast statements test.

#: The column behind each field of the refresh rule.
RULE_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "session_revoked_at": sessions.c.revoked_at,
    "used_at": refresh_tokens.c.used_at,
    "expires_at": refresh_tokens.c.expires_at,
    "session_expires_at": sessions.c.expires_at,
    "owner_enabled": users.c.enabled,
}
NOW = sa.bindparam("now", type_=sa.BigInteger)
IDLE_UNTIL = sa.bindparam("idle_until", type_=sa.BigInteger)


def sql_condition(condition: Condition, now: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    column = RULE_COLUMNS[condition.field]
    if condition.check is Check.UNSET:
        return column.is_(None)
    if condition.check is Check.AFTER_NOW:
        return column > now
    return column == sa.true()


#: The token presented is live: ``refresh_rule.LIVENESS``, as a WHERE.
LIVE = (
    refresh_tokens.c.token_hash == sa.bindparam("presented_hash"),
    *(sql_condition(condition, NOW) for condition in LIVENESS),
)


def _sql_earlier(a: sa.ColumnElement[int], b: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """``refresh_rule.earlier`` in SQL: a CASE, which every backend has (``least`` is not
    SQLite's)."""
    return sa.case((a <= b, a), else_=b)


def sql_expires_at(session_expires_at: sa.ColumnElement[int]) -> sa.ColumnElement[int]:
    """``RefreshPolicy.expires_at`` in SQL, for a token touched at ``:idle_until - idle``."""
    return capped(IDLE_UNTIL, session_expires_at, _sql_earlier)


#: The session's last use is due to be stamped (``refresh_rule.last_use_due``).
LAST_USE_DUE = sa.or_(sessions.c.last_used_at.is_(None), last_use_due(sessions.c.last_used_at, NOW))
#: Stamp a session's last use, at the rule's resolution.
TOUCH = (
    sessions.update()
    .where(sessions.c.id == sa.bindparam("touched_session"), LAST_USE_DUE)
    .values(last_used_at=NOW)
)

_FIND_REFRESH = (
    sa.select(
        refresh_tokens.c.id,
        refresh_tokens.c.session_id,
        sessions.c.user_id,
        sessions.c.created_at.label("session_created_at"),
        *(column.label(field) for field, column in RULE_COLUMNS.items()),
    )
    .select_from(refresh_tokens.join(sessions).outerjoin(users))
    .where(refresh_tokens.c.token_hash == sa.bindparam("token_hash"))
)
SPEND_REFRESH = (
    refresh_tokens.update()
    .where(refresh_tokens.c.id == sa.bindparam("token_id"), refresh_tokens.c.used_at.is_(None))
    .values(used_at=sa.bindparam("now"), sealed_token=sa.null())
)

EXTEND_REFRESH = (
    refresh_tokens.update()
    .where(refresh_tokens.c.id == sa.bindparam("token_id"))
    .values(expires_at=sa.bindparam("new_expires_at", type_=sa.BigInteger))
)

#: What the fast statements return: the token, its session and its owner (one row per role).
LIVE_COLUMNS = (
    refresh_tokens.c.id,
    refresh_tokens.c.session_id,
    refresh_tokens.c.expires_at,
    sessions.c.user_id,
    sessions.c.created_at.label("session_created_at"),
    sessions.c.expires_at.label("session_expires_at"),
    users.c.username,
    users.c.email,
    users.c.password_hash,
)


def fast_params(
    token_hash: str,
    *,
    now: int,
    idle_until: int,
    successor_hash: str | None = None,
    sealed_token: str | None = None,
) -> dict[str, Any]:
    """The parameters of the fast statements. Named unlike any column: an UPDATE takes a
    parameter named after one of its table's columns as a value to SET."""
    return {
        "presented_hash": token_hash,
        "successor_hash": successor_hash,
        "successor_sealed": sealed_token,
        "now": now,
        "idle_until": idle_until,
    }


def live_record(
    rows: Sequence[Mapping[Any, Any]], *, used_at: int | None
) -> tuple[User, RefreshRecord]:
    """The owner and the token, from a fast statement's rows (one per role)."""
    row = rows[0]
    record = RefreshRecord(
        id=row["id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        expires_at=row["expires_at"],
        used_at=used_at,
        session_expires_at=row["session_expires_at"],
        session_created_at=row["session_created_at"],
        session_revoked_at=None,
        owner_enabled=True,
    )
    user = User(
        id=row["user_id"],
        username=row["username"],
        email=row["email"],
        roles=frozenset(ROLE_BY_ID[r["role_id"]] for r in rows if r["role_id"] is not None),
        password_hash=row["password_hash"],
    )
    return user, record


class RefreshTokens:
    def __init__(self, connection: AsyncConnection) -> None:
        self._c = connection

    #: Values go in as parameters: the statement and its cache key are made once, not per call.
    _INSERT = refresh_tokens.insert()

    async def insert(
        self,
        token_hash: str,
        session_id: str,
        *,
        parent_id: int | None,
        now: int,
        expires_at: int,
        sealed_token: str | None = None,
    ) -> None:
        await self._c.execute(
            self._INSERT,
            {
                "token_hash": token_hash,
                "session_id": session_id,
                "parent_id": parent_id,
                "created_at": now,
                "expires_at": expires_at,
                "sealed_token": sealed_token,
            },
        )

    async def sealed_successor(self, parent_id: int, *, created_since: int, now: int) -> str | None:
        """The sealed token of ``parent_id``'s child, if it is unspent, unexpired and was
        created within the window.

        A locking read: under MariaDB's repeatable read a plain one would not see a child
        committed by a concurrent refresh after this transaction's first read."""
        query = (
            sa.select(refresh_tokens.c.sealed_token)
            .where(
                refresh_tokens.c.parent_id == parent_id,
                refresh_tokens.c.used_at.is_(None),
                refresh_tokens.c.created_at >= created_since,
                refresh_tokens.c.expires_at > now,
            )
            .with_for_update()
        )
        return (await self._c.execute(query)).scalar_one_or_none()

    async def clear_sealed(self, *, created_before: int) -> None:
        await self._c.execute(
            refresh_tokens.update()
            .where(
                refresh_tokens.c.sealed_token.is_not(None),
                refresh_tokens.c.created_at < created_before,
            )
            .values(sealed_token=None)
        )

    async def find(self, token_hash: str) -> RefreshRecord | None:
        row = (await self._c.execute(_FIND_REFRESH, {"token_hash": token_hash})).first()
        if row is None:
            return None
        return RefreshRecord(
            id=row.id,
            session_id=row.session_id,
            user_id=row.user_id,
            expires_at=row.expires_at,
            used_at=row.used_at,
            session_expires_at=row.session_expires_at,
            session_created_at=row.session_created_at,
            session_revoked_at=row.session_revoked_at,
            owner_enabled=bool(row.owner_enabled),
        )

    async def spend(self, token_id: int, *, now: int) -> bool:
        """Mark the token used; False if someone else already did (one atomic statement)."""
        result = await self._c.execute(SPEND_REFRESH, {"token_id": token_id, "now": now})
        return result.rowcount == 1

    async def delete(self, token_id: int) -> None:
        await self._c.execute(refresh_tokens.delete().where(refresh_tokens.c.id == token_id))

    async def touch_session(self, session_id: str, *, now: int) -> None:
        """Stamp the session's last use, unless it was stamped within the rule's resolution."""
        await self._c.execute(TOUCH, {"touched_session": session_id, "now": now})

    async def extend(self, token_id: int, *, expires_at: int) -> None:
        """Move a reusable token's idle expiry (rotation off)."""
        await self._c.execute(EXTEND_REFRESH, {"token_id": token_id, "new_expires_at": expires_at})
