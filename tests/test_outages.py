"""A cut network to the database or Redis: 503 within the timeout, and service again after."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from authgate.bus import RevocationBus
from authgate.config import Settings
from authgate.errors import StorageUnavailableError
from authgate.http.app import build_app
from authgate.revocations import RevokedSessions
from authgate.runtime import build_services
from authgate.services import Services
from authgate.storage import Database
from tests.conftest import FakeClock
from tests.databases import empty
from tests.helpers import legacy, refresh, sign_in, sign_up, signed_in
from tests.relay import Relay

pytestmark = pytest.mark.anyio

TIMEOUT_SECONDS = 1
# Generous: this catches a hang (a request held for the whole cut), not slowness.
BOUND_SECONDS = 10 * TIMEOUT_SECONDS
UNAVAILABLE = {
    "message": "The service is temporarily unavailable. Try again shortly.",
    "code": "storage_unavailable",
}
REDIS_URL = os.environ.get("AUTHGATE_TEST_REDIS_URL")


async def timed(request: Awaitable[httpx.Response]) -> httpx.Response:
    """``request``'s answer, failing the test if it takes longer than the bound."""
    with anyio.fail_after(BOUND_SECONDS):
        return await request


@contextlib.asynccontextmanager
async def serving(services: Services, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(services, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as client:
        yield client


# -- the database --------------------------------------------------------------------------


@pytest.fixture
def relay(database_url: str) -> Iterator[Relay]:
    if database_url.startswith("sqlite"):
        pytest.skip("sqlite: no network to cut (see the locked-database test)")
    with Relay.in_front_of(database_url) as relay:
        yield relay


async def test_a_cut_database_answers_503_within_the_timeout_and_recovers(
    relay: Relay, settings: Settings, clock: FakeClock
) -> None:
    settings = settings.replace(db_timeout_seconds=TIMEOUT_SECONDS)
    database = Database.connect(relay.url, timeout_seconds=TIMEOUT_SECONDS)
    await empty(database)
    services = await build_services(settings, database, clock=clock)
    try:
        async with serving(services, settings) as client:
            tokens = await signed_in(client)
            for cut in (relay.black_hole, relay.refuse):
                cut()
                answers = [
                    await timed(refresh(client, "an-unknown-refresh-token-0123456789abc")),
                    await timed(refresh(client, tokens["refreshToken"])),
                    await timed(sign_in(client)),
                    await timed(sign_up(client, "bob")),
                ]
                assert [a.status_code for a in answers] == [503] * 4, cut.__name__
                assert answers[0].json() == UNAVAILABLE
                assert answers[0].headers["retry-after"] == "1"
                # A protected request never touches the database.
                protected = await timed(
                    client.get("/api/test/user", headers=legacy(tokens["accessToken"]))
                )
                assert protected.status_code == 200
                # The background revocation poll and purge fail in time too, and try again.
                for background in (services.upkeep.sync, services.upkeep.purge):
                    with anyio.fail_after(BOUND_SECONDS), pytest.raises(StorageUnavailableError):
                        await background()
                relay.forward()
                # The connections that timed out were dropped, not handed on: the pool
                # serves again, more times over than it holds connections.
                for _ in range(12):
                    fresh = await timed(sign_in(client))
                    assert fresh.status_code == 200, fresh.text
                renewed = await timed(refresh(client, tokens["refreshToken"]))
                assert renewed.status_code == 200
                tokens = renewed.json()
    finally:
        await services.aclose()
        await database.close()


async def test_concurrent_requests_in_a_cut_all_answer_within_the_timeout(
    relay: Relay, settings: Settings, clock: FakeClock
) -> None:
    """More requests than pooled connections: those waiting for a connection are bounded too."""
    database = Database.connect(relay.url, pool_size=2, timeout_seconds=TIMEOUT_SECONDS)
    await empty(database)
    services = await build_services(settings, database, clock=clock)
    try:
        async with serving(services, settings) as client:
            relay.black_hole()
            with anyio.fail_after(BOUND_SECONDS):
                answers = await asyncio.gather(
                    *(refresh(client, f"unknown-refresh-token-{i:032d}") for i in range(6))
                )
            assert [a.status_code for a in answers] == [503] * 6
            relay.forward()
            assert (await timed(sign_up(client))).status_code == 200
    finally:
        await services.aclose()
        await database.close()


async def test_a_locked_sqlite_database_answers_503_within_the_timeout(
    tmp_path: Path, settings: Settings, clock: FakeClock
) -> None:
    """Another process holds the write lock: every writer here gives up within the timeout,
    the last in this process's queue too (not after the ones before it, one timeout each)."""
    from tests.databases import migrate

    path = tmp_path / "locked.db"
    await migrate(f"sqlite:///{path}")
    database = Database.connect(f"sqlite:///{path}", timeout_seconds=TIMEOUT_SECONDS)
    services = await build_services(settings, database, clock=clock)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        async with serving(services, settings) as client:
            holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would
            with anyio.fail_after(BOUND_SECONDS):
                answers = await asyncio.gather(
                    *(refresh(client, f"unknown-refresh-token-{i:032d}") for i in range(20))
                )
            assert [a.status_code for a in answers] == [503] * 20
            holder.execute("ROLLBACK")
            assert (await timed(sign_up(client))).status_code == 200
    finally:
        holder.close()
        await services.aclose()
        await database.close()


# -- Redis ---------------------------------------------------------------------------------

needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="redis: set AUTHGATE_TEST_REDIS_URL to run against it"
)


@pytest.fixture
def redis_relay() -> Iterator[Relay]:
    if not REDIS_URL:
        pytest.skip("redis: set AUTHGATE_TEST_REDIS_URL to run against it")
    with Relay.in_front_of(REDIS_URL) as relay:
        yield relay


@pytest.fixture
async def on_relayed_redis(
    redis_relay: Relay, settings: Settings, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[tuple[Services, Settings]]:
    """A service on a fresh SQLite database whose rate-limit counters live behind the relay."""
    from tests.databases import migrate

    url = f"sqlite:///{tmp_path / 'redis-faults.db'}"
    await migrate(url)
    settings = settings.replace(redis_url=redis_relay.url, db_timeout_seconds=TIMEOUT_SECONDS)
    database = Database.connect(url, timeout_seconds=TIMEOUT_SECONDS)
    services = await build_services(settings, database, clock=clock)
    yield services, settings
    await services.aclose()
    await database.close()


async def test_a_redis_connection_reset_mid_request_answers_503_not_500(
    redis_relay: Relay, on_relayed_redis: tuple[Services, Settings]
) -> None:
    async with serving(*on_relayed_redis) as client:
        assert (await timed(sign_up(client))).status_code == 200
        redis_relay.black_hole()
        async with anyio.create_task_group() as tasks:
            answers: list[httpx.Response] = []

            async def attempt() -> None:
                answers.append(await timed(sign_in(client)))

            tasks.start_soon(attempt)
            await anyio.sleep(0.3)  # the request now waits on Redis
            redis_relay.refuse()  # and its connection is reset under it
        assert answers[0].status_code == 503
        assert answers[0].json() == UNAVAILABLE
        assert (await timed(refresh(client, "x" * 43))).status_code == 503  # reset at once
        redis_relay.forward()
        assert (await timed(sign_in(client))).status_code == 200


async def test_a_black_holed_redis_answers_503_within_the_timeout(
    redis_relay: Relay, on_relayed_redis: tuple[Services, Settings]
) -> None:
    async with serving(*on_relayed_redis) as client:
        tokens = await signed_in(client)
        redis_relay.black_hole()
        started = time.monotonic()
        answers = [
            await timed(sign_in(client)),
            await timed(sign_up(client, "bob")),
            await timed(refresh(client, tokens["refreshToken"])),
            await timed(client.get("/readyz")),
        ]
        # One timeout each; the client's own retries (three of 2 s each) would take 24 s.
        assert time.monotonic() - started < BOUND_SECONDS
        assert [a.status_code for a in answers] == [503] * 4
        assert answers[3].json()["checks"]["redis"] == "unreachable"
        # A protected request does not need Redis.
        protected = await client.get("/api/test/user", headers=legacy(tokens["accessToken"]))
        assert protected.status_code == 200
        redis_relay.forward()
        assert (await timed(refresh(client, tokens["refreshToken"]))).status_code == 200


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait, up to the bound, for ``condition``; ``what`` names it if it never comes."""
    with anyio.move_on_after(BOUND_SECONDS):
        while not condition():
            await anyio.sleep(0.05)
    assert condition(), f"not {what} within {BOUND_SECONDS} s"


async def test_a_silently_lost_subscription_is_noticed_logged_and_restored(
    redis_relay: Relay,
    on_relayed_redis: tuple[Services, Settings],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert REDIS_URL is not None
    services, settings = on_relayed_redis
    # This process's bus reaches Redis through the relay; another process's directly.
    services.upkeep.bus = RevocationBus(
        redis_relay.url,
        services.upkeep.revoked,
        timeout_seconds=TIMEOUT_SECONDS,
        heartbeat_seconds=0.2,
        retry_seconds=0.2,
    )
    elsewhere = RevokedSessions(retention_seconds=900, clock=clock)
    other_bus = RevocationBus(REDIS_URL, elsewhere, timeout_seconds=TIMEOUT_SECONDS)
    bus = services.upkeep.bus
    caplog.set_level(logging.INFO, logger="authgate.bus")

    def events() -> list[str]:
        return [getattr(record, "event", "") for record in caplog.records]

    async with serving(services, settings) as client, anyio.create_task_group() as tasks:
        tasks.start_soon(bus.run)
        tasks.start_soon(other_bus.run)
        await eventually(lambda: bus.connected, "subscribed")
        ready = await client.get("/readyz")
        assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "redis_pubsub": "ok"}

        redis_relay.black_hole()  # silence: no error, no closed connection
        await eventually(lambda: not bus.connected, "noticed")
        await eventually(lambda: "bus.unavailable" in events(), "logged")
        unready = await timed(client.get("/readyz"))
        assert unready.status_code == 503
        assert unready.json()["checks"]["redis_pubsub"] == "unreachable"

        redis_relay.forward()
        await eventually(lambda: bus.connected, "reconnected")
        assert "bus.reconnected" in events()
        assert (await timed(client.get("/readyz"))).status_code == 200
        elsewhere.add("a-session-revoked-elsewhere", int(clock()))
        await eventually(
            lambda: "a-session-revoked-elsewhere" in services.upkeep.revoked, "delivered"
        )
        tasks.cancel_scope.cancel()
