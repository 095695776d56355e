"""The refresh rule, case by case, on every backend, through both paths, rotation on and off.

Each case arranges a token, checks the verdict ``refresh_rule.classify`` gives the stored
record, presents the token through the fast path (``RefreshService``) or the detailed one
only (``detailed_only()``), and checks the error and the rows left behind. A second test
checks that the SQL generated from the rule and the rule in Python agree on a grid of rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from authgate.config import Settings
from authgate.errors import (
    AuthError,
    InvalidRefreshTokenError,
    RefreshTokenExpiredError,
    RefreshTokenReusedError,
    RefreshTokenRevokedError,
)
from authgate.models import NewUser, Role
from authgate.refresh import digest
from authgate.refresh_rule import (
    LIVENESS,
    RESOLUTION_SECONDS,
    Check,
    RefreshPolicy,
    Verdict,
    classify,
)
from authgate.runtime import build_services
from authgate.services import Services
from authgate.storage import Database
from authgate.storage.refresh_tokens import LIVE, RULE_COLUMNS, sql_expires_at
from authgate.storage.tables import refresh_tokens, sessions, users
from tests.conftest import PASSWORD, FakeClock

pytestmark = pytest.mark.anyio

DAY = 86400
TTL = 7 * DAY  # the default absolute lifetime
IDLE = DAY  # the idle lifetime these cases run with
GRACE = 30  # the default grace window


@dataclass
class World:
    """One signed-in user under test; times are the fake clock's."""

    services: Services
    database: Database
    clock: FakeClock
    rotation: bool
    signed_in_at: int = 0
    successor: str = ""  # what the refresh before the case answered, when there was one

    @property
    def now(self) -> int:
        return int(self.clock())

    async def sign_in(self) -> str:
        await self.services.auth.sign_up("alice", "alice@example.com", PASSWORD)
        self.signed_in_at = self.now
        return (await self.services.auth.sign_in("alice", PASSWORD)).tokens.refresh_token

    async def execute(self, statement: str) -> None:
        async with self.database.transaction() as tx:
            await tx.connection.execute(sa.text(statement))


class Effect(Enum):
    """What presenting the token does to its rows."""

    NOTHING = "nothing"
    DELETED = "deleted"  # an expired token is cleaned up
    RENEWED = "renewed"  # rotated (spent, with a successor) or, rotation off, extended


@dataclass(frozen=True)
class Case:
    name: str
    arrange: Callable[[World], Awaitable[str]]  # the token to present
    verdict: Verdict  # classify() on the stored record, before it is presented
    error: type[AuthError] | None
    effect: Effect
    revoked: bool = False  # the session, afterwards
    #: The renewed token's expiry: the successor's (rotation), the token's own (rotation off,
    #: when ``kept_expiry`` does not say otherwise).
    expires_at: Callable[[World], int] = lambda w: w.now + IDLE
    kept_expiry: Callable[[World], int] | None = None
    #: The session's last use afterwards, when the refresh succeeds.
    last_used_at: Callable[[World], int] = lambda w: w.now
    rotation: tuple[bool, ...] = (True, False)
    #: The answer carries a token already issued: the grace window's repeat.
    repeated: bool = False


async def live(w: World) -> str:
    token = await w.sign_in()
    w.clock.advance(3600)
    return token


async def unknown(w: World) -> str:
    await w.sign_in()
    return "u" * 43


async def idle_too_long(w: World) -> str:
    token = await w.sign_in()
    w.clock.advance(IDLE)  # expires_at == now: no longer live
    return token


async def near_session_end(w: World) -> str:
    """Used every 20 hours: after 6 days 20 hours one more idle period would outlive the
    session, so the expiry stops at the session's."""
    token = await w.sign_in()
    for _ in range(8):
        token = (await w.services.refreshes.refresh(token)).refresh_token
        w.clock.advance(20 * 3600)
    assert w.now + IDLE > w.signed_in_at + TTL > w.now
    return token


async def past_session_end(w: World) -> str:
    token = (await w.services.refreshes.refresh(await near_session_end(w))).refresh_token
    w.clock.advance(w.signed_in_at + TTL - w.now)
    return token


async def session_aged_by_hand(w: World) -> str:
    """The session ends before its token would (as if an operator shortened it): its
    absolute age is a condition of its own, not only a cap on the token's expiry."""
    token = await w.sign_in()
    w.clock.advance(60)
    await w.execute(f"UPDATE sessions SET expires_at = {w.now}")  # noqa: S608 - our int
    return token


async def refreshed_seconds_before(seconds: int, w: World) -> str:
    """Refreshed an hour after sign-in, then presented again (its successor, with rotation)
    ``seconds`` later: the token re-sent by many clients, or refreshed in quick succession."""
    token = await live(w)
    token = (await w.services.refreshes.refresh(token)).refresh_token
    w.clock.advance(seconds)
    return token


async def spent_past_grace(w: World) -> str:
    token = await w.sign_in()
    await w.services.refreshes.refresh(token)
    w.clock.advance(GRACE + 1)
    return token


async def spent_within_grace(w: World) -> str:
    token = await w.sign_in()
    w.successor = (await w.services.refreshes.refresh(token)).refresh_token
    w.clock.advance(3)
    return token


async def signed_out(w: World) -> str:
    token = await w.sign_in()
    await w.services.refreshes.sign_out(token)
    return token


async def owner_disabled(w: World) -> str:
    """Disabled by hand, its sessions left alone: the refresh must end the session."""
    token = await w.sign_in()
    await w.execute("UPDATE users SET enabled = false")
    return token


async def owner_anonymised(w: World) -> str:
    """Deleted the way authgate deletes (the row kept, anonymised), sessions left alone."""
    token = await w.sign_in()
    async with w.database.transaction() as tx:
        (user,) = await tx.users.list_all()
        await tx.users.anonymize(user.id)
    return token


async def owner_row_deleted(w: World) -> str:
    token = await w.sign_in()
    await w.execute("DELETE FROM users")  # its sessions and tokens go with it
    return token


def _session_end(w: World) -> int:
    return w.signed_in_at + TTL


CASES = [
    Case("live", live, Verdict.LIVE, None, Effect.RENEWED),
    Case(
        "live, refreshed within the resolution: its times are not written again",
        partial(refreshed_seconds_before, RESOLUTION_SECONDS - 1),
        Verdict.LIVE,
        None,
        Effect.RENEWED,
        kept_expiry=lambda w: w.now - (RESOLUTION_SECONDS - 1) + IDLE,
        last_used_at=lambda w: w.now - (RESOLUTION_SECONDS - 1),
    ),
    Case(
        "live, refreshed the resolution before: its times are written",
        partial(refreshed_seconds_before, RESOLUTION_SECONDS),
        Verdict.LIVE,
        None,
        Effect.RENEWED,
    ),
    Case("unknown", unknown, Verdict.UNKNOWN, InvalidRefreshTokenError, Effect.NOTHING),
    Case(
        "expired by idleness",
        idle_too_long,
        Verdict.EXPIRED,
        RefreshTokenExpiredError,
        Effect.DELETED,
    ),
    Case(
        "live near the session's end, renewed up to it only",
        near_session_end,
        Verdict.LIVE,
        None,
        Effect.RENEWED,
        expires_at=_session_end,
    ),
    Case(
        "expired with its session's absolute age",
        past_session_end,
        Verdict.EXPIRED,
        RefreshTokenExpiredError,
        Effect.DELETED,
    ),
    Case(
        "its session aged out before it",
        session_aged_by_hand,
        Verdict.EXPIRED,
        RefreshTokenExpiredError,
        Effect.DELETED,
    ),
    Case(
        "spent after the grace window: reuse ends the session",
        spent_past_grace,
        Verdict.SPENT,
        RefreshTokenReusedError,
        Effect.NOTHING,
        revoked=True,
        rotation=(True,),
    ),
    Case(
        "spent within the grace window: the same successor again",
        spent_within_grace,
        Verdict.SPENT,
        None,
        Effect.NOTHING,
        rotation=(True,),
        repeated=True,
        last_used_at=lambda w: w.now - 3,
    ),
    Case(
        "session revoked",
        signed_out,
        Verdict.REVOKED,
        RefreshTokenRevokedError,
        Effect.NOTHING,
        revoked=True,
    ),
    Case(
        "owner disabled",
        owner_disabled,
        Verdict.OWNER_GONE,
        RefreshTokenRevokedError,
        Effect.NOTHING,
        revoked=True,
    ),
    Case(
        "owner deleted (anonymised)",
        owner_anonymised,
        Verdict.OWNER_GONE,
        RefreshTokenRevokedError,
        Effect.NOTHING,
        revoked=True,
    ),
    Case(
        "owner's row deleted",
        owner_row_deleted,
        Verdict.UNKNOWN,
        InvalidRefreshTokenError,
        Effect.NOTHING,
    ),
]

PARAMS = [
    pytest.param(case, rotation, fast, id=f"{case.name}-{mode}-{path}")
    for case in CASES
    for rotation, mode in ((True, "rotation"), (False, "no rotation"))
    if rotation in case.rotation
    for fast, path in ((True, "fast"), (False, "detailed"))
]


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements SQLAlchemy sends while the block runs."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(" ".join(str(args[2]).split()))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


#: Every token row: its hash -> (spent, expires_at).
Tokens = dict[str, tuple[bool, int]]


async def tokens(database: Database) -> Tokens:
    async with database.engine.connect() as connection:
        found = await connection.execute(
            sa.select(
                refresh_tokens.c.token_hash, refresh_tokens.c.used_at, refresh_tokens.c.expires_at
            )
        )
        return {row.token_hash: (row.used_at is not None, row.expires_at) for row in found}


async def session_state(database: Database) -> tuple[bool, int | None] | None:
    """The session's (revoked, last use), if it is still stored."""
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(sa.select(sessions.c.revoked_at, sessions.c.last_used_at))
        ).first()
    return None if row is None else (row.revoked_at is not None, row.last_used_at)


@pytest.mark.parametrize(("case", "rotation", "fast"), PARAMS)
async def test_the_refresh_rule(
    case: Case,
    rotation: bool,
    fast: bool,
    settings: Settings,
    database: Database,
    clock: FakeClock,
) -> None:
    changed = settings.replace(refresh_rotation=rotation, refresh_token_idle_ttl_seconds=IDLE)
    services = await build_services(changed, database, clock=clock)
    try:
        w = World(services, database, clock, rotation)
        token = await case.arrange(w)
        async with database.transaction(read_only=True) as tx:
            assert classify(await tx.refresh_tokens.find(digest(token)), w.now) is case.verdict
        before = await tokens(database)
        refreshes = services.refreshes if fast else services.refreshes.detailed_only()
        with statements(database) as seen:
            if case.error is None:
                pair = await refreshes.refresh(token)
            else:
                with pytest.raises(case.error) as raised:
                    await refreshes.refresh(token)
                assert type(raised.value) is case.error
        detailed = any("owner_enabled" in statement for statement in seen)
        assert detailed is (not fast or case.verdict is not Verdict.LIVE)

        expected = dict(before)
        presented = digest(token)
        if case.effect is Effect.DELETED:
            del expected[presented]
        elif case.effect is Effect.RENEWED:
            if rotation:
                expected[presented] = (True, before[presented][1])
                expected[digest(pair.refresh_token)] = (False, case.expires_at(w))
            else:
                expected[presented] = (False, (case.kept_expiry or case.expires_at)(w))
        assert await tokens(database) == expected

        state = await session_state(database)
        if case.error is None:
            assert state == (False, case.last_used_at(w))
            assert services.auth.authenticate(pair.access_token).roles == {Role.USER}
            if case.repeated:
                assert pair.refresh_token == w.successor
            else:
                assert (pair.refresh_token == token) is (not rotation)
        elif state is not None:
            assert state[0] is case.revoked
    finally:
        await services.aclose()


# -- the SQL generated from the rule agrees with the rule in Python ---------------------------

#: For each kind of check: a value that passes it and one that just fails it (at ``now``).
_PASSING = {Check.UNSET: None, Check.AFTER_NOW: 1, Check.TRUE: True}
_FAILING = {Check.UNSET: 0, Check.AFTER_NOW: 0, Check.TRUE: False}


async def test_the_generated_sql_and_the_python_rule_agree(
    database: Database, clock: FakeClock
) -> None:
    """Every combination of the rule's conditions, each failing at its boundary (an expiry
    equal to now): the generated WHERE finds exactly the tokens ``classify`` calls live."""
    now = int(clock())
    combinations = list(itertools.product((False, True), repeat=len(LIVENESS)))
    async with database.transaction() as tx:
        for number, failing in enumerate(combinations):
            user_id = await tx.users.insert(
                NewUser(f"u{number}", f"u{number}@example.com", "!", frozenset({Role.USER})),
                username_key=f"u{number}",
                email_key=f"u{number}@example.com",
                now=now,
            )
            session_id = f"{number:032x}"
            await tx.sessions.create(session_id, user_id, now=now, expires_at=now + 1)
            await tx.refresh_tokens.insert(
                f"{number:064x}", session_id, parent_id=None, now=now, expires_at=now + 1
            )
            keys = {users: user_id, sessions: session_id}
            for condition, fails in zip(LIVENESS, failing, strict=True):
                column = RULE_COLUMNS[condition.field]
                table = column.table
                key = (
                    refresh_tokens.c.token_hash == f"{number:064x}"
                    if table is refresh_tokens
                    else table.c.id == keys[table]
                )
                value = (_FAILING if fails else _PASSING)[condition.check]
                if isinstance(value, int) and not isinstance(value, bool):
                    value += now
                await tx.connection.execute(table.update().where(key).values({column.name: value}))
    found_live = sa.select(refresh_tokens.c.id).select_from(
        refresh_tokens.join(sessions).join(users)
    )
    verdicts = set()
    async with database.transaction(read_only=True) as tx:
        for number, failing in enumerate(combinations):
            token_hash = f"{number:064x}"
            verdict = classify(await tx.refresh_tokens.find(token_hash), now)
            rows = await tx.connection.execute(
                found_live.where(*LIVE), {"presented_hash": token_hash, "now": now}
            )
            assert (rows.first() is not None) is (verdict is Verdict.LIVE), failing
            assert (verdict is Verdict.LIVE) is not any(failing)
            verdicts.add(verdict)
    assert verdicts == {condition.otherwise for condition in LIVENESS} | {Verdict.LIVE}


@pytest.mark.parametrize(
    ("idle_until", "session_expires_at"), [(5, 9), (9, 5), (7, 7)], ids=["idle", "age", "both"]
)
async def test_the_generated_expiry_and_the_python_rule_agree(
    database: Database, idle_until: int, session_expires_at: int
) -> None:
    policy = RefreshPolicy(ttl_seconds=TTL, idle_seconds=IDLE)
    now = idle_until - IDLE
    async with database.transaction(read_only=True) as tx:
        in_sql = await tx.connection.scalar(
            sa.select(sql_expires_at(sa.literal(session_expires_at, sa.BigInteger))),
            {"idle_until": policy.idle_until(now)},
        )
    assert (
        in_sql == policy.expires_at(now, session_expires_at) == min(idle_until, session_expires_at)
    )
