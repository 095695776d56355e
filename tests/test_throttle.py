"""Brute force and automation: per-account failures and per-address attempts get 429."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import coredis  # noqa: TID251 - the test reads Redis directly
import httpx
import pytest

from authgate.config import Settings
from authgate.errors import TooManyRequestsError
from authgate.http.app import build_app
from authgate.runtime import build_services
from authgate.storage import Database
from authgate.throttle import MemoryWindows, Throttle
from tests.conftest import PASSWORD, FakeClock
from tests.helpers import legacy, refresh, sign_in, sign_up, signed_in

pytestmark = pytest.mark.anyio

ClientAt = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def limited(settings: Settings) -> Settings:
    return settings.replace(
        rate_limit_sign_in_per_address="30/minute",
        rate_limit_sign_in_failures_per_account_and_address="10/15 minutes",
        rate_limit_sign_in_failures_per_account="25/hour",
        rate_limit_sign_up_per_address="3/hour",
        rate_limit_refresh_per_address="4/minute",
    )


REDIS_URL = os.environ.get("AUTHGATE_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL, reason="redis: set AUTHGATE_TEST_REDIS_URL to run against it"
)


def plain_throttle(redis_url: str | None = None, *, key: bytes = b"test-key") -> Throttle:
    return Throttle(
        key=key,
        sign_in_per_address="3/minute",
        sign_in_failures_per_account_and_address="3/minute",
        sign_in_failures_per_account="5/minute",
        sign_up_per_address="3/minute",
        refresh_per_address="3/minute",
        known_address_seconds=60,
        redis_url=redis_url,
    )


async def clear_redis() -> None:
    """Every test on Redis starts with no counters (the suite's settings share one key)."""
    throttle = plain_throttle(REDIS_URL)
    try:
        await throttle.clear()
    finally:
        await throttle.aclose()


async def redis_keys() -> list[str]:
    """Every key in the test database (SCAN, the whole keyspace)."""
    redis = coredis.Redis.from_url(REDIS_URL or "", decode_responses=True)
    try:
        return [key async for key in redis.scan_iter(match="*")]
    finally:
        redis.connection_pool.disconnect()
        await anyio.sleep(0)


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
async def counters(request: pytest.FixtureRequest, limited: Settings) -> AsyncIterator[Settings]:
    """The limited settings with counters in this process's memory, or in Redis."""
    if request.param == "memory":
        yield limited
        return
    await clear_redis()
    yield limited.replace(redis_url=REDIS_URL)
    await clear_redis()


@pytest.fixture
async def client_at(
    counters: Settings, database: Database, clock: FakeClock
) -> AsyncIterator[ClientAt]:
    """Clients of one app (one set of counters), each from its own address."""
    services = await build_services(counters, database, clock=clock)
    app = build_app(services, counters)

    @asynccontextmanager
    async def open_client(address: str) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            yield client

    yield open_client
    await services.aclose()


async def wrong_passwords(client: httpx.AsyncClient, times: int, name: str = "alice") -> list[int]:
    return [(await sign_in(client, name, "wrong-password-x")).status_code for _ in range(times)]


async def test_an_attackers_failures_do_not_lock_the_owner_out(client_at: ClientAt) -> None:
    """Ten failures from one address lock that address out of the account for one window;
    the owner's right password from another address still signs in."""
    async with client_at("10.0.0.1") as attacker:
        await sign_up(attacker)
        assert await wrong_passwords(attacker, 11) == [401] * 10 + [429]
        locked = await sign_in(attacker, "alice", PASSWORD)  # even the right password waits
        assert locked.status_code == 429
        assert locked.json() == {
            "message": "Too many attempts. Try again later.",
            "code": "too_many_requests",
        }
        assert 1 <= int(locked.headers["retry-after"]) <= 15 * 60  # bounded: no permanent lock-out
    async with client_at("10.0.0.2") as owner:
        assert (await sign_in(owner, "alice", PASSWORD)).status_code == 200
    async with client_at("10.0.0.1") as attacker:
        assert (await sign_in(attacker, "alice", PASSWORD)).status_code == 429


async def test_failures_from_many_addresses_meet_the_accounts_ceiling(
    client_at: ClientAt,
) -> None:
    """25 failures an hour across all addresses: then every address that has not signed in
    to the account before is refused, the owner at a new address too, for up to an hour."""
    async with client_at("10.1.0.1") as client:
        await sign_up(client)
    statuses = []
    for n in range(3):
        async with client_at(f"10.1.1.{n}") as attacker:
            statuses += await wrong_passwords(attacker, 10)
    assert statuses == [401] * 25 + [429] * 5
    async with client_at("10.1.2.1") as new_place:
        refused = await sign_in(new_place, "alice", PASSWORD)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert (await sign_in(new_place, "bob", "wrong-password-x")).status_code == 401


async def test_an_address_that_signed_in_before_passes_the_accounts_ceiling(
    client_at: ClientAt,
) -> None:
    async with client_at("10.2.0.1") as home:
        await sign_up(home)
        assert (await sign_in(home, "alice", PASSWORD)).status_code == 200
    for n in range(3):
        async with client_at(f"10.2.1.{n}") as attacker:
            await wrong_passwords(attacker, 10)
    async with client_at("10.2.0.1") as home:
        assert (await sign_in(home, "alice", PASSWORD)).status_code == 200
        # Its own failures still count: the exemption is from others' failures only.
        assert await wrong_passwords(home, 11) == [401] * 10 + [429]
    async with client_at("10.2.1.0") as attacker:  # the attackers stay refused
        assert (await sign_in(attacker, "alice", PASSWORD)).status_code == 429


async def test_a_known_address_is_known_to_one_account_only(client_at: ClientAt) -> None:
    async with client_at("10.3.0.1") as home:
        await sign_up(home, "alice")
        await sign_up(home, "bob")
        assert (await sign_in(home, "alice")).status_code == 200
    for n in range(3):
        async with client_at(f"10.3.1.{n}") as attacker:
            await wrong_passwords(attacker, 10, "bob")
    async with client_at("10.3.0.1") as home:
        assert (await sign_in(home, "bob")).status_code == 429


async def test_password_re_checks_count_like_sign_ins(client_at: ClientAt) -> None:
    """A stolen access token cannot be used to guess the password through re-authentication."""
    async with client_at("10.4.0.1") as thief:
        access = (await signed_in(thief))["accessToken"]
        statuses = [
            (
                await thief.post(
                    "/api/auth/signout-all",
                    json={"currentPassword": "wrong-password-x"},
                    headers=legacy(access),
                )
            ).status_code
            for _ in range(11)
        ]
        assert statuses == [403] * 10 + [429]
        assert (await sign_in(thief, "alice", PASSWORD)).status_code == 429
    async with client_at("10.4.0.2") as owner:
        assert (await sign_in(owner, "alice", PASSWORD)).status_code == 200


async def test_unknown_usernames_are_throttled_exactly_like_real_ones(client_at: ClientAt) -> None:
    async with client_at("10.0.0.3") as client:
        await sign_up(client)
        real = await wrong_passwords(client, 11)
        ghost = await wrong_passwords(client, 11, "ghost")
    assert real == ghost == [401] * 10 + [429]


async def test_other_accounts_are_not_locked_by_someone_elses_failures(client_at: ClientAt) -> None:
    async with client_at("10.0.0.4") as client:
        await sign_up(client, "alice")
        await sign_up(client, "bob")
        assert await wrong_passwords(client, 11) == [401] * 10 + [429]
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


async def test_email_changes_spend_the_sign_up_budget(client_at: ClientAt) -> None:
    """ "Email is already in use!" is the sign-up's answer too: one budget for both routes."""
    async with client_at("10.5.0.1") as client:
        await sign_up(client, "bob")
        access = (await signed_in(client, "alice"))["accessToken"]  # 2 of 3 sign-ups spent
        answers = [
            await client.post(
                "/api/auth/email", json={"email": "bob@example.com"}, headers=legacy(access)
            )
            for _ in range(2)
        ]
    assert [answer.status_code for answer in answers] == [400, 429]
    assert 1 <= int(answers[1].headers["retry-after"]) <= 3600
    async with client_at("10.5.0.2") as elsewhere:  # per address, like sign-up
        taken = await elsewhere.post(
            "/api/auth/email", json={"email": "bob@example.com"}, headers=legacy(access)
        )
        assert taken.status_code == 400


def test_an_invalid_rate_names_the_variable() -> None:
    from authgate.errors import ConfigurationError

    with pytest.raises(
        ConfigurationError,
        match="AUTHGATE_RATE_LIMIT_SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS",
    ):
        Throttle(
            key=b"k",
            sign_in_per_address="1/minute",
            sign_in_failures_per_account_and_address="often",
            sign_in_failures_per_account="1/minute",
            sign_up_per_address="1/minute",
            refresh_per_address="1/minute",
            known_address_seconds=0,
        )


@needs_redis
async def test_two_throttles_on_one_redis_share_a_budget() -> None:
    await clear_redis()
    first, second = plain_throttle(REDIS_URL), plain_throttle(REDIS_URL)
    try:
        await first.sign_up_attempt("192.0.2.1")
        await second.sign_up_attempt("192.0.2.1")
        await first.sign_up_attempt("192.0.2.1")
        with pytest.raises(TooManyRequestsError):
            await second.sign_up_attempt("192.0.2.1")
    finally:
        await clear_redis()
        await first.aclose()
        await second.aclose()


@needs_redis
async def test_a_known_address_is_known_to_every_process_on_one_redis() -> None:
    """One process sees the sign-in; another, at the account's ceiling, lets that address in."""
    await clear_redis()
    first, second = plain_throttle(REDIS_URL), plain_throttle(REDIS_URL)
    try:
        await first.sign_in_succeeded("192.0.2.10", "alice")
        for n in range(5):  # the ceiling is 5 a minute, from any addresses
            await second.sign_in_failed(f"198.51.100.{n}", "alice")
        with pytest.raises(TooManyRequestsError):
            await second.password_attempt("198.51.100.99", "alice")
        await second.password_attempt("192.0.2.10", "alice")
    finally:
        await clear_redis()
        await first.aclose()
        await second.aclose()


@needs_redis
async def test_no_typed_name_or_address_reaches_redis(
    limited: Settings, database: Database, clock: FakeClock
) -> None:
    """People type passwords into the name field: counters are keyed by an HMAC of it."""
    await clear_redis()
    on_redis = limited.replace(redis_url=REDIS_URL)
    services = await build_services(on_redis, database, clock=clock)
    transport = httpx.ASGITransport(app=build_app(services, on_redis), client=("203.0.113.77", 1))
    typed = "Zebra-Unicorn-Passw0rd"
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
            await sign_up(client, "alice")
            await sign_in(client, "alice")
            await wrong_passwords(client, 3, typed)
            await wrong_passwords(client, 2, "alice")
            await refresh(client, "garbage")
        keys = await redis_keys()
        assert len(keys) >= 6  # sign-in, sign-up, refresh, failures, ceiling, known address
        found = " ".join(keys).casefold()
        for secret in (typed.casefold(), "alice", "203.0.113.77"):
            assert secret not in found
    finally:
        await services.aclose()
        await clear_redis()


async def test_an_unreachable_redis_gives_503_not_500(
    limited: Settings, database: Database, clock: FakeClock
) -> None:
    broken = limited.replace(redis_url="redis://127.0.0.1:1/0")
    services = await build_services(broken, database, clock=clock)
    transport = httpx.ASGITransport(app=build_app(services, broken))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            response = await sign_in(client)
    finally:
        await services.aclose()
    assert response.status_code == 503


class _CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def test_counting_in_memory_never_leaves_the_event_loop() -> None:
    """No thread per hit: those took the GIL from the event loop under load."""
    executor = _CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    throttle = Throttle(
        key=b"k" * 32,
        sign_in_per_address="100/minute",
        sign_in_failures_per_account_and_address="100/minute",
        sign_in_failures_per_account="100/minute",
        sign_up_per_address="100/minute",
        refresh_per_address="100/minute",
        known_address_seconds=60,
    )
    for _ in range(20):
        await throttle.refresh_attempt("192.0.2.1")
        await throttle.sign_in_failed("192.0.2.1", "alice")
        await asyncio.sleep(0)
    await throttle.sign_in_succeeded("192.0.2.1", "alice")
    for _ in range(10):
        await asyncio.sleep(0)
    assert executor.submitted == 0


async def test_a_memory_window_holds_its_limit_and_tells_its_start() -> None:
    windows = MemoryWindows()
    assert [await windows.acquire_entry("k", 3, 60) for _ in range(4)] == [True] * 3 + [False]
    start, hits = await windows.get_moving_window("k", 3, 60)
    assert hits == 3
    assert await windows.acquire_entry("other", 3, 60)
    await windows.clear("k")
    assert (await windows.get_moving_window("k", 3, 60))[1] == 0
    assert await windows.incr("n", 60) == 1
    assert await windows.incr("n", 60) == 2
    assert await windows.get("n") == 2
    assert await windows.reset() == 2
    assert start > 0
