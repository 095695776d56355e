"""Refresh tokens: finding, spending and rotating them. Never commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from authgate.models import RefreshRecord, User
from authgate.storage.repositories import ROLE_BY_ID, TOUCH_SESSION
from authgate.storage.tables import refresh_tokens, sessions, user_roles, users

_FIND_REFRESH = (
    sa.select(
        refresh_tokens.c.id,
        refresh_tokens.c.session_id,
        sessions.c.user_id,
        refresh_tokens.c.expires_at,
        refresh_tokens.c.used_at,
        sessions.c.expires_at.label("session_expires_at"),
        sessions.c.created_at.label("session_created_at"),
        sessions.c.revoked_at,
    )
    .select_from(refresh_tokens.join(sessions))
    .where(refresh_tokens.c.token_hash == sa.bindparam("token_hash"))
)
_SPEND_REFRESH = (
    refresh_tokens.update()
    .where(refresh_tokens.c.id == sa.bindparam("token_id"), refresh_tokens.c.used_at.is_(None))
    .values(used_at=sa.bindparam("now"), sealed_token=None)
)

# -- the common case of a refresh ------------------------------------------------------------
# The token unspent and unexpired, its session unrevoked, its owner enabled: one condition
# for every backend. Anything else is classified in full by the detailed path (``find``,
# ``spend``, ``Users.get``), which knows what went wrong.
_NOW = sa.bindparam("now", type_=sa.BigInteger)
_LIVE = (
    refresh_tokens.c.token_hash == sa.bindparam("presented_hash"),
    refresh_tokens.c.used_at.is_(None),
    refresh_tokens.c.expires_at > _NOW,
    sessions.c.revoked_at.is_(None),
    users.c.enabled,
)
_ROTATED_COLUMNS = (
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
_FIND_LIVE = (
    sa.select(*_ROTATED_COLUMNS, user_roles.c.role_id)
    .select_from(refresh_tokens.join(sessions).join(users).outerjoin(user_roles))
    .where(*_LIVE)
)
_INSERT_REFRESH = refresh_tokens.insert()


def _rotate_in_one_statement() -> sa.Select[Any]:
    """PostgreSQL: claim, successor and touch as data-modifying CTEs, one round trip.

    The claim is the detailed path's atomic ``UPDATE ... WHERE used_at IS NULL`` with the
    rest of the condition added; the successor and the touch read only its output, so they
    happen exactly when it does. One row per role of the owner (at least one).
    """
    claimed = (
        refresh_tokens.update()
        .where(
            sessions.c.id == refresh_tokens.c.session_id,
            users.c.id == sessions.c.user_id,
            *_LIVE,
        )
        .values(used_at=_NOW, sealed_token=sa.null())
        .returning(*_ROTATED_COLUMNS)
        .cte("claimed")
    )
    successor = _INSERT_REFRESH.from_select(
        ["token_hash", "session_id", "parent_id", "created_at", "expires_at", "sealed_token"],
        sa.select(
            sa.bindparam("successor_hash", type_=sa.String),
            claimed.c.session_id,
            claimed.c.id,
            _NOW,
            sa.func.least(
                sa.bindparam("idle_until", type_=sa.BigInteger), claimed.c.session_expires_at
            ),
            sa.bindparam("successor_sealed", type_=sa.Text),
        ),
    ).cte("successor")
    touched = (
        sessions.update()
        .where(sessions.c.id == claimed.c.session_id)
        .values(last_used_at=_NOW)
        .cte("touched")
    )
    return (
        sa.select(claimed, user_roles.c.role_id)
        .select_from(claimed.outerjoin(user_roles, user_roles.c.user_id == claimed.c.user_id))
        .add_cte(successor, touched)
    )


ROTATE_IN_ONE_STATEMENT = _rotate_in_one_statement()


def rotation_params(
    token_hash: str, successor_hash: str, *, now: int, idle_until: int, sealed_token: str | None
) -> dict[str, Any]:
    """The parameters of the rotation statements. Named unlike any column: an UPDATE takes
    a parameter named after one of its table's columns as a value to SET."""
    return {
        "presented_hash": token_hash,
        "successor_hash": successor_hash,
        "successor_sealed": sealed_token,
        "now": now,
        "idle_until": idle_until,
    }


def rotated(rows: Sequence[Mapping[Any, Any]], now: int) -> tuple[User, RefreshRecord]:
    """The owner and the spent token, from the rotation's rows (one per role)."""
    row = rows[0]
    record = RefreshRecord(
        id=row["id"],
        session_id=row["session_id"],
        user_id=row["user_id"],
        expires_at=row["expires_at"],
        used_at=now,
        session_expires_at=row["session_expires_at"],
        session_created_at=row["session_created_at"],
        session_revoked_at=None,
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
            refresh_tokens.insert().values(
                token_hash=token_hash,
                session_id=session_id,
                parent_id=parent_id,
                created_at=now,
                expires_at=expires_at,
                sealed_token=sealed_token,
            )
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
            session_revoked_at=row.revoked_at,
        )

    async def rotate(
        self,
        token_hash: str,
        successor_hash: str,
        *,
        now: int,
        idle_until: int,
        sealed_token: str | None = None,
    ) -> tuple[User, RefreshRecord] | None:
        """The common case of a refresh: spend a live token (unspent, unexpired, its session
        unrevoked, its owner enabled), store its successor, which expires at ``idle_until`` or
        with its session, whichever is first, and stamp the session's last use.

        None, with nothing written, for anything else (unknown, spent, expired, revoked,
        disabled, or a concurrent refresh won): the caller then classifies the token in full.
        Four statements; ``Database.rotate_refresh_token`` does it in one on PostgreSQL.
        """
        params = rotation_params(
            token_hash, successor_hash, now=now, idle_until=idle_until, sealed_token=sealed_token
        )
        rows = (await self._c.execute(_FIND_LIVE, params)).mappings().all()
        if not rows or not await self.spend(rows[0]["id"], now=now):
            return None
        user, record = rotated(rows, now)
        await self._c.execute(
            _INSERT_REFRESH,
            {
                "token_hash": successor_hash,
                "session_id": record.session_id,
                "parent_id": record.id,
                "created_at": now,
                "expires_at": min(idle_until, record.session_expires_at),
                "sealed_token": sealed_token,
            },
        )
        await self._c.execute(TOUCH_SESSION, {"session_id": record.session_id, "now": now})
        return user, record

    async def spend(self, token_id: int, *, now: int) -> bool:
        """Mark the token used; False if someone else already did (one atomic statement)."""
        result = await self._c.execute(_SPEND_REFRESH, {"token_id": token_id, "now": now})
        return result.rowcount == 1

    async def delete(self, token_id: int) -> None:
        await self._c.execute(refresh_tokens.delete().where(refresh_tokens.c.id == token_id))

    async def extend(self, token_id: int, *, expires_at: int) -> None:
        """Move a reusable token's idle expiry (rotation off)."""
        await self._c.execute(
            refresh_tokens.update()
            .where(refresh_tokens.c.id == token_id)
            .values(expires_at=expires_at)
        )
