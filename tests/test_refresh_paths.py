"""Refresh's two paths: the common case in one step (one statement on PostgreSQL), and
everything else classified in full, in a transaction of its own, after the first step wrote
nothing. The statements each path runs are read from the engine's events."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from authgate.admin import OPERATOR
from authgate.config import Settings
from authgate.errors import (
    RefreshTokenExpiredError,
    RefreshTokenReusedError,
    RefreshTokenRevokedError,
    StorageUnavailableError,
)
from authgate.http.app import build_app
from authgate.models import Role
from authgate.runtime import build_services
from authgate.service import AuthService
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import PASSWORD, FakeClock
from tests.relay import Relay

pytestmark = pytest.mark.anyio

DAY = 86400


@contextmanager
def statements(database: Database) -> Iterator[list[str]]:
    """The SQL statements SQLAlchemy sends while the block runs (not BEGIN or COMMIT)."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = " ".join(str(args[2]).split())
        if not statement.upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


def verbs(seen: list[str]) -> list[str]:
    return [statement.split()[0].upper() for statement in seen]


async def sign_in(service: AuthService, username: str = "alice") -> str:
    await service.sign_up(username, f"{username}@example.com", PASSWORD)
    return (await service.sign_in(username, PASSWORD)).tokens.refresh_token


async def rows(database: Database, query: str) -> list[sa.Row[Any]]:
    async with database.engine.connect() as connection:
        return list((await connection.execute(sa.text(query))).all())


async def session_revoked(database: Database) -> bool:
    (row,) = await rows(database, "SELECT revoked_at FROM sessions")
    return row.revoked_at is not None


async def test_a_live_token_rotates_in_the_first_step(
    service: AuthService, database: Database, services: Services
) -> None:
    token = await sign_in(service)
    for _ in range(3):
        with statements(database) as seen:
            token = (await services.refreshes.refresh(token)).refresh_token
        if database.backend == "mysql":
            # Find, claim, successor; the session was stamped within the rule's resolution.
            assert verbs(seen) == ["SELECT", "UPDATE", "INSERT"]
        else:
            # Straight on the driver: PostgreSQL's one statement outside a transaction,
            # SQLite's few on its own connection.
            assert seen == []
    assert not await session_revoked(database)


async def test_the_first_step_carries_every_role_into_the_access_token(
    service: AuthService, services: Services
) -> None:
    roles = ["user", "moderator", "admin"]
    await services.admin.create_user(OPERATOR, "cli", "root", "root@example.com", PASSWORD, roles)
    token = (await service.sign_in("root", PASSWORD)).tokens.refresh_token
    pair = await services.refreshes.refresh(token)
    claims = service.authenticate(pair.access_token)
    assert claims.roles == set(Role)  # one row per role


async def test_the_first_step_writes_what_the_detailed_path_would(
    service: AuthService, database: Database, clock: FakeClock, services: Services
) -> None:
    """Spent with its seal cleared, a successor that is its child and expires with the
    session at the latest, the session stamped."""
    first = await sign_in(service)
    signed_in_at = int(clock())
    clock.advance(6 * DAY + 23 * 3600)  # an idle period would outlive the 7-day session
    await services.refreshes.refresh(first)
    now = int(clock())
    spent, successor = await rows(
        database,
        "SELECT id, parent_id, created_at, expires_at, used_at, sealed_token"
        " FROM refresh_tokens ORDER BY id",
    )
    assert (spent.used_at, spent.sealed_token) == (now, None)
    assert (successor.parent_id, successor.created_at, successor.used_at) == (spent.id, now, None)
    assert successor.expires_at == signed_in_at + 7 * DAY
    (session,) = await rows(database, "SELECT last_used_at, revoked_at FROM sessions")
    assert (session.last_used_at, session.revoked_at) == (now, None)


async def test_a_reused_token_misses_the_first_step_and_still_revokes_the_session(
    service: AuthService,
    database: Database,
    settings: Settings,
    clock: FakeClock,
    services: Services,
) -> None:
    first = await sign_in(service)
    second = (await services.refreshes.refresh(first)).refresh_token
    clock.advance(settings.refresh_grace_seconds + 1)  # past the window for a lost answer
    with statements(database) as seen, pytest.raises(RefreshTokenReusedError):
        await services.refreshes.refresh(first)
    assert any(s.startswith("UPDATE sessions SET revoked_at") for s in seen)
    assert await session_revoked(database)
    with pytest.raises(RefreshTokenRevokedError):
        await services.refreshes.refresh(second)  # the legitimate successor died with its session


async def test_an_expired_token_misses_the_first_step_and_is_deleted(
    service: AuthService, database: Database, clock: FakeClock, services: Services
) -> None:
    token = await sign_in(service)
    clock.advance(7 * DAY)
    with pytest.raises(RefreshTokenExpiredError):
        await services.refreshes.refresh(token)
    assert await rows(database, "SELECT id FROM refresh_tokens") == []


async def test_a_revoked_sessions_token_misses_the_first_step_and_stays_unspent(
    service: AuthService, database: Database, services: Services
) -> None:
    token = await sign_in(service)
    await services.refreshes.sign_out(token)
    with pytest.raises(RefreshTokenRevokedError):
        await services.refreshes.refresh(token)
    (row,) = await rows(database, "SELECT used_at FROM refresh_tokens")
    assert row.used_at is None


async def test_a_disabled_owners_token_misses_the_first_step_and_ends_the_session(
    service: AuthService, database: Database, services: Services
) -> None:
    """Disabled without its sessions revoked (as by hand in the database): the first step
    refuses the token, and the detailed path ends the session."""
    token = await sign_in(service)
    async with database.transaction() as tx:
        (user,) = await tx.users.list_all()
        await tx.users.set_enabled(user.id, False)
    with pytest.raises(RefreshTokenRevokedError):
        await services.refreshes.refresh(token)
    assert await session_revoked(database)


async def test_a_repeat_within_the_grace_window_gets_the_successor_the_first_step_sealed(
    service: AuthService, database: Database, clock: FakeClock, services: Services
) -> None:
    first = await sign_in(service)
    second = (await services.refreshes.refresh(first)).refresh_token
    (sealed,) = await rows(
        database, "SELECT sealed_token FROM refresh_tokens WHERE used_at IS NULL"
    )
    assert sealed.sealed_token  # sealed by the first step, for the window only
    clock.advance(3)
    assert (await services.refreshes.refresh(first)).refresh_token == second
    assert not await session_revoked(database)
    await services.refreshes.refresh(second)


_TOKENS = "SELECT id, token_hash, parent_id, used_at FROM refresh_tokens"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_an_answer_lost_after_the_commit_is_a_503_and_the_retry_keeps_the_session(
    settings: Settings, database: Database, database_url: str, clock: FakeClock
) -> None:
    """Issue 11, item 5, for real: the rotation commits on PostgreSQL, the connection is cut
    before its answer arrives, the client gets 503 and retries with the same token."""
    if database.backend != "postgresql":
        pytest.skip("the relay cuts PostgreSQL's one-statement rotation")
    with Relay.in_front_of(database_url) as relay:
        relayed = Database.connect(relay.url)
        services = await build_services(settings, relayed, clock=clock)
        service = services.auth
        try:
            # Warm up: the pooled connection is open and the rotation statement prepared,
            # so the database's first answer after arming is the rotation's result.
            first = (await services.refreshes.refresh(await sign_in(service))).refresh_token
            relay.cut_next_answer()
            transport = httpx.ASGITransport(app=build_app(services, settings))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                lost = await client.post("/api/auth/refreshtoken", json={"refreshToken": first})
            assert lost.status_code == 503
            assert relay.cuts == 1
            tokens = {row.token_hash: row for row in await rows(database, _TOKENS)}
            spent = tokens[digest(first)]
            assert spent.used_at is not None  # the rotation did commit: the answer was lost
            (child,) = [row for row in tokens.values() if row.parent_id == spent.id]
            clock.advance(2)
            retried = (await services.refreshes.refresh(first)).refresh_token
            assert digest(retried) == child.token_hash  # the successor the lost answer held
            assert len(await rows(database, _TOKENS)) == len(tokens)  # and no second one
            await services.refreshes.refresh(retried)
            assert not await session_revoked(database)
        finally:
            await services.aclose()
            await relayed.close()


async def test_a_lost_connection_is_a_503_and_is_not_handed_on(
    service: AuthService, database: Database, database_url: str, services: Services
) -> None:
    if database.backend != "postgresql":
        pytest.skip("PostgreSQL's first step runs on the driver's connection")
    token = await sign_in(service)
    other = Database.connect(database_url)  # its own pool: every backend of ours goes
    try:
        async with other.engine.connect() as connection:
            await connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
    finally:
        await other.close()
    with pytest.raises(StorageUnavailableError):
        await services.refreshes.refresh(token)
    # Nothing was spent, and the next connection is a new one.
    await services.refreshes.refresh(token)


async def test_an_unreachable_database_is_a_503(settings: Settings, clock: FakeClock) -> None:
    database = Database.connect("postgresql://postgres@127.0.0.1:1/none", timeout_seconds=1)
    services = await build_services(settings, database, clock=clock)
    try:
        with pytest.raises(StorageUnavailableError):
            await services.refreshes.refresh("a" * 43)
    finally:
        await services.aclose()
        await database.close()
