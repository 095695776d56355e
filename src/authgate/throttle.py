"""Rate limits for sign-in, sign-up and refresh (the only importer of ``limits``).

Counters live in this process's memory, or in Redis when ``AUTHGATE_REDIS_URL``
is set so that every process and machine shares one budget. Windows are
moving windows: a throttled client is let in again as soon as old attempts
age out, so nobody can lock an account away for longer than one window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from authgate.errors import ConfigurationError, StorageUnavailableError, TooManyRequestsError

T = TypeVar("T")


def _parse(name: str, value: str) -> RateLimitItem:
    try:
        return parse(value)
    except ValueError:
        variable = "AUTHGATE_RATE_LIMIT_" + name.upper()
        raise ConfigurationError(f"{variable}: not a rate such as '10/minute'.") from None


class Throttle:
    """Counts attempts per client address and failed sign-ins per account."""

    def __init__(
        self,
        *,
        sign_in_per_address: str,
        sign_in_failures_per_account: str,
        sign_up_per_address: str,
        refresh_per_address: str,
        redis_url: str | None = None,
        timeout_seconds: float = 3,
    ) -> None:
        """Rates in the ``limits`` notation, e.g. ``"10/15 minutes"``; with Redis, each call
        answers or fails with StorageUnavailableError within ``timeout_seconds``."""
        self._sign_in = _parse("sign_in_per_address", sign_in_per_address)
        self._failures = _parse("sign_in_failures_per_account", sign_in_failures_per_account)
        self._sign_up = _parse("sign_up_per_address", sign_up_per_address)
        self._refresh = _parse("refresh_per_address", refresh_per_address)
        self._pool: Any = None
        self._storage: Storage = MemoryStorage()
        self._timeout_seconds = timeout_seconds
        if redis_url:
            # Our own pool, so that close() can release its sockets. The client's timeouts
            # and retries are only a first line: _call bounds each call as a whole.
            from coredis import ConnectionPool  # only with Redis configured

            self._pool = ConnectionPool.from_url(
                redis_url, connect_timeout=timeout_seconds, stream_timeout=timeout_seconds
            )
            self._storage = RedisStorage(
                "async+" + redis_url,
                wrap_exceptions=True,
                key_prefix="authgate",
                connection_pool=self._pool,
            )
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def sign_in_attempt(self, address: str, account: str) -> None:
        """Count one sign-in from ``address``; refuse if it or ``account`` is over budget."""
        await self._hit(self._sign_in, "sign_in", address)
        await self.password_attempt(account)

    async def password_attempt(self, account: str) -> None:
        """Refuse if ``account`` has used up its failed-password budget."""
        if not await self._call(self._limiter.test(self._failures, "failures", account)):
            await self._refuse(self._failures, "failures", account)

    async def sign_in_failed(self, account: str) -> None:
        await self._call(self._limiter.hit(self._failures, "failures", account))

    async def sign_up_attempt(self, address: str) -> None:
        await self._hit(self._sign_up, "sign_up", address)

    async def refresh_attempt(self, address: str) -> None:
        await self._hit(self._refresh, "refresh", address)

    async def _hit(self, item: RateLimitItem, scope: str, key: str) -> None:
        if not await self._call(self._limiter.hit(item, scope, key)):
            await self._refuse(item, scope, key)

    async def _refuse(self, item: RateLimitItem, scope: str, key: str) -> None:
        stats = await self._call(self._limiter.get_window_stats(item, scope, key))
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequestsError(retry_after_seconds=min(retry_after, item.get_expiry()))

    async def _call(self, work: Awaitable[T]) -> T:
        """``work``'s result; any failure to reach Redis (an error, a reset connection, no
        answer within the timeout) is StorageUnavailableError, the documented 503."""
        try:
            with anyio.fail_after(self._timeout_seconds):
                return await work
        # limits wraps only the client's own errors; a reset socket arrives as OSError
        # (ConnectionResetError), a connection closed mid-reply as EOFError.
        except (StorageError, OSError, EOFError) as error:  # TimeoutError is an OSError
            raise StorageUnavailableError() from error

    async def ping(self) -> None:
        """Raise StorageUnavailableError unless the counters' store answers."""
        if self._pool is not None and not await self._call(self._storage.check()):
            raise StorageUnavailableError()

    async def clear(self) -> None:
        """Forget every counter (operators and tests)."""
        await self._storage.reset()

    async def aclose(self) -> None:
        if self._pool is not None:
            self._pool.disconnect()
            await anyio.sleep(0)  # let the closed transports finish before the loop may end
