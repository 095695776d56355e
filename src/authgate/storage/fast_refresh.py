"""The common case of a refresh in as few round trips as each backend allows.

A live token (``refresh_tokens.LIVE``, generated from ``refresh_rule.LIVENESS``) is rotated
(spent, with a successor) or, with rotation off, extended; its session's last use is
stamped (both at ``refresh_rule.RESOLUTION_SECONDS``). Anything else writes nothing and
returns None, and the caller classifies the token in full on the detailed path. SQLAlchemy's
work per statement cost more than the database's (docs/benchmarks.md), so the statements
below are compiled once and run on the driver: PostgreSQL does each case in one statement
straight on asyncpg outside a transaction; SQLite in a few statements on its own ``sqlite3``
connection, the refreshes of one turn of the event loop sharing a write transaction
(``Database.in_sqlite_batch``); MariaDB runs the same few statements through SQLAlchemy in
one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa

from authgate.models import RefreshRecord, User
from authgate.refresh_rule import capped, earlier, expiry_moves, last_use_due
from authgate.storage.database import Database, DriverStatement, Transaction
from authgate.storage.refresh_tokens import (
    EXTEND_REFRESH,
    LAST_USE_DUE,
    LIVE,
    LIVE_COLUMNS,
    NOW,
    SPEND_REFRESH,
    TOUCH,
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
    return _stamped_with_roles(claimed, successor)


def _extend_in_one_statement() -> sa.Select[Any]:
    """PostgreSQL, rotation off: read the live token, move its expiry and stamp its session,
    one round trip. Each write is skipped within the rule's resolution (the token re-sent
    by many clients at once): no new row version for every re-send."""
    found = (
        sa.select(*LIVE_COLUMNS)
        .select_from(refresh_tokens.join(sessions).join(users))
        .where(*LIVE)
        .cte("found")
    )
    new_expiry = sql_expires_at(found.c.session_expires_at)
    moved = (
        refresh_tokens.update()
        .where(
            refresh_tokens.c.id == found.c.id, expiry_moves(refresh_tokens.c.expires_at, new_expiry)
        )
        .values(expires_at=new_expiry)
        .cte("moved")
    )
    return _stamped_with_roles(found, moved)


def _stamped_with_roles(live: sa.CTE, write: sa.CTE) -> sa.Select[Any]:
    """The end of both statements: ``write`` done, the session's last use stamped (once
    due), and the live token's row once per role of its owner (at least one row)."""
    touched = (
        sessions.update()
        .where(sessions.c.id == live.c.session_id, LAST_USE_DUE)
        .values(last_used_at=NOW)
        .cte("touched")
    )
    return (
        sa.select(live, user_roles.c.role_id)
        .select_from(live.outerjoin(user_roles, user_roles.c.user_id == live.c.user_id))
        .add_cte(write, touched)
    )


ROTATE_IN_ONE_STATEMENT = _rotate_in_one_statement()
EXTEND_IN_ONE_STATEMENT = _extend_in_one_statement()


#: The steps' statements by name (SQLite and MariaDB); an INSERT's values by column key.
_STEPS: dict[str, tuple[sa.Select[Any] | sa.UpdateBase, list[str] | None]] = {
    "find": (_FIND_LIVE, None),
    "spend": (SPEND_REFRESH, None),
    "insert": (_INSERT, _SUCCESSOR_COLUMNS),
    "extend": (EXTEND_REFRESH, None),
    "touch": (TOUCH, None),
}
Rows = Sequence[Mapping[Any, Any]]


class _Steps(Protocol):
    """Runs the steps' statements: through SQLAlchemy, or straight on ``sqlite3``."""

    async def rows(self, name: str, params: Mapping[str, Any]) -> Rows: ...

    async def count(self, name: str, params: Mapping[str, Any]) -> int: ...


class _InTransaction:
    def __init__(self, tx: Transaction) -> None:
        self._c = tx.connection

    async def rows(self, name: str, params: Mapping[str, Any]) -> Rows:
        return (await self._c.execute(_STEPS[name][0], params)).mappings().all()

    async def count(self, name: str, params: Mapping[str, Any]) -> int:
        return (await self._c.execute(_STEPS[name][0], params)).rowcount


class _OnSqlite:
    def __init__(self, compiled: dict[str, DriverStatement], connection: sqlite3.Connection):
        self._compiled = compiled
        self._c = connection

    async def rows(self, name: str, params: Mapping[str, Any]) -> Rows:
        statement = self._compiled[name]
        return self._c.execute(statement.sql, statement.arguments(params)).fetchall()

    async def count(self, name: str, params: Mapping[str, Any]) -> int:
        statement = self._compiled[name]
        return self._c.execute(statement.sql, statement.arguments(params)).rowcount


class FastRefresh:
    """The fast paths of a refresh, with rotation and without."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._rotate = database.on_driver(ROTATE_IN_ONE_STATEMENT)
        self._extend = database.on_driver(EXTEND_IN_ONE_STATEMENT)
        sqlite = {name: database.on_sqlite(*statement) for name, statement in _STEPS.items()}
        self._sqlite = {k: v for k, v in sqlite.items() if v is not None} or None

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
        if self._sqlite is not None:
            compiled = self._sqlite
            return await self._database.in_sqlite_batch(
                lambda connection: _rotate_in_steps(_OnSqlite(compiled, connection), params)
            )
        async with self._database.transaction() as tx:
            return await _rotate_in_steps(_InTransaction(tx), params)

    async def extend(
        self, token_hash: str, *, now: int, idle_until: int
    ) -> tuple[User, RefreshRecord] | None:
        """Rotation off: move a live token's expiry to ``idle_until`` (never past its
        session's); the owner and the token, or None with nothing written."""
        params = fast_params(token_hash, now=now, idle_until=idle_until)
        if self._extend is not None:
            rows = await self._database.fetch_on_driver(self._extend, params)
            return live_record(rows, used_at=None) if rows else None
        if self._sqlite is not None:
            # Usually nothing is due within the resolution: a read, outside any write
            # transaction and without waiting for the writers (WAL readers never do).
            found = self._database.read_on_sqlite(self._sqlite["find"], params)
            if found is not None and (not found or not _extension_due(found, params)):
                return live_record(found, used_at=None) if found else None
            compiled = self._sqlite
            return await self._database.in_sqlite_batch(
                lambda connection: _extend_in_steps(_OnSqlite(compiled, connection), params)
            )
        async with self._database.transaction() as tx:
            return await _extend_in_steps(_InTransaction(tx), params)


async def _rotate_in_steps(
    steps: _Steps, params: dict[str, Any]
) -> tuple[User, RefreshRecord] | None:
    """SQLite and MariaDB: find, claim, insert the successor, touch (four statements)."""
    rows = await steps.rows("find", params)
    now: int = params["now"]
    # Not spent: a concurrent refresh spent it after our read.
    if not rows or await steps.count("spend", {"token_id": rows[0]["id"], "now": now}) != 1:
        return None
    user, record = live_record(rows, used_at=now)
    await steps.count(
        "insert",
        {
            "token_hash": params["successor_hash"],
            "session_id": record.session_id,
            "parent_id": record.id,
            "created_at": now,
            "expires_at": capped(params["idle_until"], record.session_expires_at, earlier),
            "sealed_token": params["successor_sealed"],
        },
    )
    if _last_use_due(rows, now):
        await steps.count("touch", {"touched_session": record.session_id, "now": now})
    return user, record


async def _extend_in_steps(
    steps: _Steps, params: dict[str, Any]
) -> tuple[User, RefreshRecord] | None:
    """SQLite and MariaDB, rotation off: find, then write only what moves (usually nothing)."""
    rows = await steps.rows("find", params)
    if not rows:
        return None
    now: int = params["now"]
    user, record = live_record(rows, used_at=None)
    expires_at = capped(params["idle_until"], record.session_expires_at, earlier)
    if expiry_moves(record.expires_at, expires_at):
        await steps.count("extend", {"token_id": record.id, "new_expires_at": expires_at})
    if _last_use_due(rows, now):
        await steps.count("touch", {"touched_session": record.session_id, "now": now})
    return user, record


def _extension_due(rows: Rows, params: Mapping[str, Any]) -> bool:
    """Whether extending the token found in ``rows`` writes anything."""
    row = rows[0]
    expires_at = capped(params["idle_until"], row["session_expires_at"], earlier)
    return bool(expiry_moves(row["expires_at"], expires_at)) or _last_use_due(rows, params["now"])


def _last_use_due(rows: Rows, now: int) -> bool:
    last_used_at: int | None = rows[0]["last_used_at"]
    return last_used_at is None or bool(last_use_due(last_used_at, now))
