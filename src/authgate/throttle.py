"""Rate limits for sign-in, sign-up, email changes and refresh (the only importer of ``limits``).

Counters live in this process's memory, or in Redis when ``AUTHGATE_REDIS_URL``
is set so that every process and machine shares one budget (through ``limits``, on a
connection pool from ``redis_client.py``). Windows are
moving windows: a throttled client is let in again as soon as old attempts
age out, so nobody can lock an account away for longer than one window.

Failed passwords are counted per account and address, so that one address's
failures do not block the account's owner elsewhere, and per account across all
addresses up to a much higher ceiling, which does not apply to an address that
signed in to the account successfully within ``known_address_seconds``.

Every key is a keyed hash (HMAC-SHA256) of what it counts: usernames as typed
(people type passwords into the name field) and addresses never reach the
store in clear, and the key is derived from a server secret the store never holds.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable
from typing import Any, TypeVar

import anyio
from limits import RateLimitItem, parse
from limits.aio.storage import MovingWindowSupport, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from authgate import redis_client
from authgate.errors import ConfigurationError, StorageUnavailableError, TooManyRequestsError

T = TypeVar("T")

security_log = logging.getLogger("authgate.security")

#: What a counter store that cannot answer raises: limits' wrapper around the client's
#: errors, or what an unreachable Redis raises past it (``redis_client.UNAVAILABLE``).
_UNAVAILABLE: tuple[type[Exception], ...] = (StorageError, *redis_client.UNAVAILABLE)

#: Hex digits kept of each key's HMAC: 128 bits, no collision in practice, shorter keys.
_DIGEST_CHARS = 32


def _parse(name: str, value: str) -> RateLimitItem:
    try:
        return parse(value)
    except ValueError:
        variable = "AUTHGATE_RATE_LIMIT_" + name.upper()
        raise ConfigurationError(f"{variable}: not a rate such as '10/minute'.") from None


class Throttle:
    """Counts attempts per client address and failed passwords per account and address."""

    def __init__(
        self,
        *,
        key: bytes,
        sign_in_per_address: str,
        sign_in_failures_per_account_and_address: str,
        sign_in_failures_per_account: str,
        sign_up_per_address: str,
        refresh_per_address: str,
        known_address_seconds: int,
        redis_url: str | None = None,
        timeout_seconds: float = 3,
    ) -> None:
        """Rates in the ``limits`` notation, e.g. ``"10/15 minutes"``. ``key`` hashes every
        counter's name; processes that share a Redis must share it. With Redis, each call
        answers or fails with StorageUnavailableError within ``timeout_seconds``."""
        self._key = key
        self._sign_in = _parse("sign_in_per_address", sign_in_per_address)
        self._failures = _parse(
            "sign_in_failures_per_account_and_address", sign_in_failures_per_account_and_address
        )
        self._ceiling = _parse("sign_in_failures_per_account", sign_in_failures_per_account)
        self._sign_up = _parse("sign_up_per_address", sign_up_per_address)
        self._refresh = _parse("refresh_per_address", refresh_per_address)
        self._known_seconds = known_address_seconds
        self._pool: Any = None
        self._storage: Storage = MemoryWindows()
        self._timeout_seconds = timeout_seconds
        if redis_url:
            # Our own pool, so that close() can release its sockets. The client's timeouts
            # and retries are only a first line: _call bounds each call as a whole.
            self._pool = redis_client.connection_pool(redis_url, timeout_seconds=timeout_seconds)
            self._storage = RedisStorage(
                "async+" + redis_url,
                wrap_exceptions=True,
                key_prefix="authgate",
                connection_pool=self._pool,
            )
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def sign_in_attempt(self, address: str, account: str) -> None:
        """Count one sign-in from ``address``; refuse if it is over budget, or if
        ``password_attempt`` would refuse."""
        await self._hit(self._sign_in, "sign_in", self._id(address))
        await self.password_attempt(address, account)

    async def password_attempt(self, address: str, account: str) -> None:
        """Refuse if ``address`` has used up its failed passwords for ``account``, or if the
        account is over its ceiling and ``address`` has not signed in to it before."""
        pair = (self._id(account), self._id(address))
        if not await self._call(self._limiter.test(self._failures, "failures", *pair)):
            await self._refuse(self._failures, "failures", *pair)
        if not await self._call(
            self._limiter.test(self._ceiling, "account_failures", pair[0])
        ) and not await self._call(self._storage.get(self._known_key(*pair))):
            await self._refuse(self._ceiling, "account_failures", pair[0])

    async def sign_in_failed(self, address: str, account: str) -> None:
        """Count a wrong password for ``account`` from ``address``, and against the ceiling."""
        account_id = self._id(account)
        await self._call(
            self._limiter.hit(self._failures, "failures", account_id, self._id(address))
        )
        await self._call(self._limiter.hit(self._ceiling, "account_failures", account_id))

    async def sign_in_succeeded(self, address: str, account: str) -> None:
        """Remember that ``address`` knows ``account``'s password, for ``known_address_seconds``
        from now: the account's ceiling no longer refuses it."""
        if self._known_seconds <= 0:
            return
        known = self._known_key(self._id(account), self._id(address))
        # incr() sets the expiry only when it creates the key: clear first to restart it.
        await self._call(self._storage.clear(known))
        await self._call(self._storage.incr(known, self._known_seconds))

    async def sign_up_attempt(self, address: str) -> None:
        await self._hit(self._sign_up, "sign_up", self._id(address))

    async def email_attempt(self, address: str) -> None:
        """An email change, which can answer "Email is already in use!" like a sign-up: it
        spends the same per-address budget, so neither route enumerates beyond it."""
        await self.sign_up_attempt(address)

    async def refresh_attempt(self, address: str) -> None:
        await self._hit(self._refresh, "refresh", self._id(address))

    def _id(self, value: str) -> str:
        """What a counter is keyed by: never the value itself (a name may be a password)."""
        digest = hmac.new(self._key, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return digest.hexdigest()[:_DIGEST_CHARS]

    @staticmethod
    def _known_key(account_id: str, address_id: str) -> str:
        return f"KNOWN/{account_id}/{address_id}"

    async def _hit(self, item: RateLimitItem, scope: str, *ids: str) -> None:
        if not await self._call(self._limiter.hit(item, scope, *ids)):
            await self._refuse(item, scope, *ids)

    async def _refuse(self, item: RateLimitItem, scope: str, *ids: str) -> None:
        stats = await self._call(self._limiter.get_window_stats(item, scope, *ids))
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        security_log.warning("throttled", extra={"event": "throttled"})
        raise TooManyRequestsError(retry_after_seconds=min(retry_after, item.get_expiry()))

    async def _call(self, work: Awaitable[T]) -> T:
        """``work``'s result; any failure to reach Redis (an error, a reset connection, no
        answer within the timeout) is StorageUnavailableError, the documented 503. The
        in-memory windows do no I/O: no deadline (a cancel scope on every attempt cost about
        a seventh of the event loop's work per sign-in, docs/benchmarks.md)."""
        if self._pool is None:
            return await work
        try:
            with anyio.fail_after(self._timeout_seconds):
                return await work
        # limits wraps only the client's own errors; a reset socket arrives as OSError
        # (ConnectionResetError), a connection closed mid-reply as EOFError.
        except _UNAVAILABLE as error:
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


class MemoryWindows(Storage, MovingWindowSupport):
    """This process's counters for ``limits``, in plain dicts on the event loop.

    ``limits``' own async memory storage runs a background task that hops to a thread for
    every key it expires, restarted after every hit, and prepends each hit to a list (a copy
    of the whole window): under load the thread hops took the GIL from the event loop on
    every request (docs/benchmarks.md, "Where the time goes"). Here a window is a deque of
    hit times, oldest first, trimmed when its key is used; keys nobody used for longer than
    their window are swept every ``_SWEEP_EVERY`` calls.
    """

    STORAGE_SCHEME = None
    _SWEEP_EVERY = 4096

    def __init__(self) -> None:
        super().__init__()
        self._windows: dict[str, tuple[deque[float], int]] = {}  # key -> (hits, expiry)
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._calls = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def _tick(self, now: float) -> None:
        self._calls += 1
        if self._calls % self._SWEEP_EVERY:
            return
        for key, (hits, expiry) in list(self._windows.items()):
            if not hits or hits[-1] <= now - expiry:
                del self._windows[key]
        for key, (_count, expires_at) in list(self._counters.items()):
            if expires_at <= now:
                del self._counters[key]

    def _window(self, key: str, expiry: int, now: float) -> deque[float]:
        hits = self._windows.get(key, (None, 0))[0]
        if hits is None:
            hits = deque()
            self._windows[key] = (hits, expiry)
        while hits and hits[0] <= now - expiry:
            hits.popleft()
        return hits

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = time.time()
        self._tick(now)
        hits = self._window(key, expiry, now)
        if len(hits) + amount > limit:
            return False
        hits.extend([now] * amount)
        return True

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """The start of ``key``'s window (its oldest hit in it) and its hits."""
        now = time.time()
        hits = self._window(key, expiry, now) if key in self._windows else None
        return (hits[0], len(hits)) if hits else (now, 0)

    async def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        self._tick(now)
        count, expires_at = self._counters.get(key, (0, 0.0))
        if expires_at <= now:
            count, expires_at = 0, now + expiry
        self._counters[key] = (count + amount, expires_at)
        return count + amount

    async def get(self, key: str) -> int:
        count, expires_at = self._counters.get(key, (0, 0.0))
        return count if expires_at > time.time() else 0

    async def get_expiry(self, key: str) -> float:
        return self._counters.get(key, (0, time.time()))[1]

    async def clear(self, key: str) -> None:
        self._windows.pop(key, None)
        self._counters.pop(key, None)

    async def reset(self) -> int | None:
        removed = len(self._windows) + len(self._counters)
        self._windows.clear()
        self._counters.clear()
        return removed

    async def check(self) -> bool:
        return True
