"""Brute force and automation: per-account failures and per-address attempts get 429."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.runtime import build_service
from authgate.storage import Database
from authgate.throttle import Throttle
from tests.conftest import PASSWORD, FakeClock
from tests.helpers import refresh, sign_in, sign_up

pytestmark = pytest.mark.anyio

ClientAt = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return settings.replace(
        rate_limit_sign_in_per_address="30/minute",
        rate_limit_sign_in_failures_per_account="5/15 minutes",
        rate_limit_sign_up_per_address="3/hour",
        rate_limit_refresh_per_address="4/minute",
    )


@pytest.fixture
async def client_at(limited: Settings, database: Database, clock: FakeClock) -> ClientAt:
    """Clients of one app (one set of counters), each from its own address."""
    app = build_app(await build_service(limited, database, clock=clock), limited)

    @asynccontextmanager
    async def open_client(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            yield client

    return open_client


async def test_failed_sign_ins_lock_the_account_for_one_window(client_at: ClientAt) -> None:
    async with client_at("10.0.0.1") as client:
        await sign_up(client)
        statuses = [
            (await sign_in(client, "alice", "wrong-password-x")).status_code for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429]
        locked = await sign_in(client, "alice", PASSWORD)  # even the right password waits
        assert locked.status_code == 429
        assert locked.json() == {"message": "Too many attempts. Try again later."}
        assert 1 <= int(locked.headers["retry-after"]) <= 15 * 60  # bounded: no permanent lock-out
    async with client_at("10.0.0.2") as other:
        assert (
            await sign_in(other, "alice", PASSWORD)
        ).status_code == 429  # per account, any address


async def test_unknown_usernames_are_throttled_exactly_like_real_ones(client_at: ClientAt) -> None:
    async with client_at("10.0.0.3") as client:
        await sign_up(client)
        real = [(await sign_in(client, "alice", "wrong-password-x")).status_code for _ in range(6)]
        ghost = [(await sign_in(client, "ghost", "wrong-password-x")).status_code for _ in range(6)]
    assert real == ghost


async def test_other_accounts_are_not_locked_by_someone_elses_failures(client_at: ClientAt) -> None:
    async with client_at("10.0.0.4") as client:
        await sign_up(client, "alice")
        await sign_up(client, "bob")
        for _ in range(6):
            await sign_in(client, "alice", "wrong-password-x")
        assert (await sign_in(client, "bob")).status_code == 200


async def test_one_address_is_limited_across_accounts(client_at: ClientAt) -> None:
    async with client_at("10.0.0.5") as client:
        statuses = [
            (await sign_in(client, f"user{i}", "wrong-password-x")).status_code for i in range(31)
        ]
        assert statuses == [401] * 30 + [429]
        assert int((await sign_in(client, "other", "x")).headers["retry-after"]) <= 60
    async with client_at("10.0.0.6") as elsewhere:
        assert (await sign_in(elsewhere, "user0", "wrong-password-x")).status_code == 401


async def test_sign_up_is_limited_per_address(client_at: ClientAt) -> None:
    async with client_at("10.0.0.7") as client:
        statuses = [(await sign_up(client, f"new{i}")).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_refresh_is_limited_per_address(client_at: ClientAt) -> None:
    async with client_at("10.0.0.8") as client:
        statuses = [(await refresh(client, f"garbage-{i}")).status_code for i in range(5)]
    assert statuses == [403, 403, 403, 403, 429]


def test_an_invalid_rate_names_the_variable() -> None:
    from authgate.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="AUTHGATE_RATE_LIMIT_SIGN_UP_PER_ADDRESS"):
        Throttle(
            sign_in_per_address="1/minute",
            sign_in_failures_per_account="1/minute",
            sign_up_per_address="often",
            refresh_per_address="1/minute",
        )


REDIS_URL = os.environ.get("AUTHGATE_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="redis: set AUTHGATE_TEST_REDIS_URL to run against it"
)


@needs_redis
async def test_two_throttles_on_one_redis_share_a_budget() -> None:
    assert REDIS_URL is not None

    def throttle() -> Throttle:
        return Throttle(
            sign_in_per_address="3/minute",
            sign_in_failures_per_account="3/minute",
            sign_up_per_address="3/minute",
            refresh_per_address="3/minute",
            redis_url=REDIS_URL,
        )

    first, second = throttle(), throttle()
    await first.clear()
    from authgate.errors import TooManyRequestsError

    try:
        await first.sign_up_attempt("192.0.2.1")
        await second.sign_up_attempt("192.0.2.1")
        await first.sign_up_attempt("192.0.2.1")
        with pytest.raises(TooManyRequestsError):
            await second.sign_up_attempt("192.0.2.1")
        await first.clear()
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreachable_redis_gives_503_not_500(
    limited: Settings, database: Database, clock: FakeClock
) -> None:
    broken = limited.replace(redis_url="redis://127.0.0.1:1/0")
    service = await build_service(broken, database, clock=clock)
    transport = httpx.ASGITransport(app=build_app(service, broken))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            response = await sign_in(client)
    finally:
        await service.aclose()
    assert response.status_code == 503
