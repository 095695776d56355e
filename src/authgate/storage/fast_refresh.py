"""The common case of a refresh in as few round trips as each backend allows.

A live token (``refresh_tokens.LIVE``, generated from ``refresh_rule.LIVENESS``) is rotated
(spent, with a successor) or, with rotation off, extended; its session's last use is
stamped. Anything else writes nothing and returns None, and the caller classifies the token
in full on the detailed path. PostgreSQL does each case in one statement, run straight on
asyncpg outside a transaction (SQLAlchemy's work per statement cost more than the
database's: docs/benchmarks.md); SQLite and MariaDB in a few statements in one transaction.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from authgate.models import RefreshRecord, User
from authgate.refresh_rule import capped, earlier
from authgate.storage.database import Database, Transaction
from authgate.storage.refresh_tokens import (
    LIVE,
    LIVE_COLUMNS,
    NOW,
    fast_params,
    live_record,
    sql_expires_at,
)
from authgate.storage.tables import refresh_tokens, sessions, user_roles, users

_SUCCESSOR_COLUMNS = [
    "token_hash",
    "session_id",
    "parent_id",
    "created_at",
    "expires_at",
    "sealed_token",
]
_INSERT = refresh_tokens.insert()
#: Stamp the session's last use; once a second is enough (tokens re-sent at once by many
#: connections would otherwise queue on the session's row for the same value).
_STALE = sa.or_(sessions.c.last_used_at.is_(None), sessions.c.last_used_at != NOW)
_TOUCH = (
    sessions.update()
    .where(sessions.c.id == sa.bindparam("touched_session"), _STALE)
    .values(last_used_at=NOW)
)
_FIND_LIVE = (
    sa.select(*LIVE_COLUMNS, sessions.c.last_used_at, user_roles.c.role_id)
    .select_from(refresh_tokens.join(sessions).join(users).outerjoin(user_roles))
    .where(*LIVE)
)


def _rotate_in_one_statement() -> sa.Select[Any]:
    """PostgreSQL: claim, successor and touch as data-modifying CTEs, one round trip.

    The claim is the detailed path's atomic ``UPDATE ... WHERE used_at IS NULL`` with the
    rest of the rule added; the successor and the touch read only its output, so they happen
    exactly when it does. One row per role of the owner (at least one).
    """
    claimed = (
        refresh_tokens.update()
        .where(sessions.c.id == refresh_tokens.c.session_id, users.c.id == sessions.c.user_id)
        .where(*LIVE)
        .values(used_at=NOW, sealed_token=sa.null())
        .returning(*LIVE_COLUMNS)
        .cte("claimed")
    )
    successor = (
        refresh_tokens.insert()
        .from_select(
            _SUCCESSOR_COLUMNS,
            sa.select(
                sa.bindparam("successor_hash", type_=sa.String),
                claimed.c.session_id,
                claimed.c.id,
                NOW,
                sql_expires_at(claimed.c.session_expires_at),
                sa.bindparam("successor_sealed", type_=sa.Text),
            ),
        )
        .cte("successor")
    )
    touched = (
        sessions.update()
        .where(sessions.c.id == claimed.c.session_id)
        .values(last_used_at=NOW)
        .cte("touched")
    )
    return (
        sa.select(claimed, user_roles.c.role_id)
        .select_from(claimed.outerjoin(user_roles, user_roles.c.user_id == claimed.c.user_id))
        .add_cte(successor, touched)
    )


def _extend_in_one_statement() -> sa.Select[Any]:
    """PostgreSQL, rotation off: read the live token, move its expiry and stamp its session,
    one round trip. Each write is skipped when it would change nothing (the token re-sent
    within the same second): no new row version for every re-send."""
    found = (
        sa.select(*LIVE_COLUMNS)
        .select_from(refresh_tokens.join(sessions).join(users))
        .where(*LIVE)
        .cte("found")
    )
    new_expiry = sql_expires_at(found.c.session_expires_at)
    moved = (
        refresh_tokens.update()
        .where(refresh_tokens.c.id == found.c.id, refresh_tokens.c.expires_at != new_expiry)
        .values(expires_at=new_expiry)
        .cte("moved")
    )
    touched = (
        sessions.update()
        .where(sessions.c.id == found.c.session_id, _STALE)
        .values(last_used_at=NOW)
        .cte("touched")
    )
    return (
        sa.select(found, user_roles.c.role_id)
        .select_from(found.outerjoin(user_roles, user_roles.c.user_id == found.c.user_id))
        .add_cte(moved, touched)
    )


ROTATE_IN_ONE_STATEMENT = _rotate_in_one_statement()
EXTEND_IN_ONE_STATEMENT = _extend_in_one_statement()


class FastRefresh:
    """The fast paths of a refresh, with rotation and without."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._rotate = database.on_driver(ROTATE_IN_ONE_STATEMENT)
        self._extend = database.on_driver(EXTEND_IN_ONE_STATEMENT)

    async def rotate(
        self,
        token_hash: str,
        successor_hash: str,
        *,
        now: int,
        idle_until: int,
        sealed_token: str | None = None,
    ) -> tuple[User, RefreshRecord] | None:
        """Spend a live token and store its successor (expiring at ``idle_until`` or with its
        session, whichever is first, sealed for the grace window when ``sealed_token`` is
        given); the owner and the spent token, or None with nothing written."""
        params = fast_params(
            token_hash,
            now=now,
            idle_until=idle_until,
            successor_hash=successor_hash,
            sealed_token=sealed_token,
        )
        if self._rotate is not None:
            rows = await self._database.fetch_on_driver(self._rotate, params)
            return live_record(rows, used_at=now) if rows else None
        async with self._database.transaction() as tx:
            return await _rotate_in_steps(tx, params)

    async def extend(
        self, token_hash: str, *, now: int, idle_until: int
    ) -> tuple[User, RefreshRecord] | None:
        """Rotation off: move a live token's expiry to ``idle_until`` (never past its
        session's); the owner and the token, or None with nothing written."""
        params = fast_params(token_hash, now=now, idle_until=idle_until)
        if self._extend is not None:
            rows = await self._database.fetch_on_driver(self._extend, params)
            return live_record(rows, used_at=None) if rows else None
        async with self._database.transaction() as tx:
            return await _extend_in_steps(tx, params)


async def _rotate_in_steps(
    tx: Transaction, params: dict[str, Any]
) -> tuple[User, RefreshRecord] | None:
    """SQLite and MariaDB: find, claim, insert the successor, touch (four statements)."""
    rows = (await tx.connection.execute(_FIND_LIVE, params)).mappings().all()
    now: int = params["now"]
    # Not spent: a concurrent refresh spent it after our read.
    if not rows or not await tx.refresh_tokens.spend(rows[0]["id"], now=now):
        return None
    user, record = live_record(rows, used_at=now)
    await tx.connection.execute(
        _INSERT,
        {
            "token_hash": params["successor_hash"],
            "session_id": record.session_id,
            "parent_id": record.id,
            "created_at": now,
            "expires_at": capped(params["idle_until"], record.session_expires_at, earlier),
            "sealed_token": params["successor_sealed"],
        },
    )
    await tx.connection.execute(_TOUCH, {"touched_session": record.session_id, "now": now})
    return user, record


async def _extend_in_steps(
    tx: Transaction, params: dict[str, Any]
) -> tuple[User, RefreshRecord] | None:
    """SQLite and MariaDB, rotation off: find, then write only what changes."""
    rows = (await tx.connection.execute(_FIND_LIVE, params)).mappings().all()
    if not rows:
        return None
    now: int = params["now"]
    user, record = live_record(rows, used_at=None)
    expires_at = capped(params["idle_until"], record.session_expires_at, earlier)
    if expires_at != record.expires_at:
        await tx.refresh_tokens.extend(record.id, expires_at=expires_at)
    if rows[0]["last_used_at"] != now:
        await tx.connection.execute(_TOUCH, {"touched_session": record.session_id, "now": now})
    return user, record
