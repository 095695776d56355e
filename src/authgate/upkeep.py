"""What keeps a process in step and its storage bounded, and what operators ask of it:
other processes' revocations and keys, purging, readiness and the gauges of ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import anyio

from authgate.errors import NotReadyError, StorageUnavailableError
from authgate.keys import KeyRing
from authgate.models import Clock
from authgate.revocations import RevokedSessions
from authgate.signing import SigningKeys
from authgate.storage import Database
from authgate.throttle import Throttle

if TYPE_CHECKING:
    from authgate.bus import RevocationBus

log = logging.getLogger("authgate.runtime")

#: How long a gauge's query may take before /metrics answers without it.
_GAUGE_TIMEOUT_SECONDS = 2


class Upkeep:
    def __init__(
        self,
        database: Database,
        revoked: RevokedSessions,
        keys: SigningKeys,
        ring: KeyRing,
        throttle: Throttle,
        *,
        redis: bool,
        ready_timeout_seconds: float,
        refresh_grace_seconds: int,
        clock: Clock,
    ) -> None:
        """``redis``: whether Redis is configured (readiness checks it then);
        ``ready_timeout_seconds``: how long each readiness check may take."""
        self._database = database
        #: The revoked sessions every request checks, fed by the poll and by ``bus``.
        self.revoked = revoked
        #: The Redis revocation bus, when this process runs one (runtime sets it).
        self.bus: RevocationBus | None = None
        self._keys = keys
        self._ring = ring
        self._throttle = throttle
        self._redis = redis
        self._ready_timeout = ready_timeout_seconds
        self._grace_seconds = refresh_grace_seconds
        self._clock = clock

    # -- staying in step ---------------------------------------------------------

    async def sync_revocations(self) -> None:
        """Learn the revocations other processes committed (called periodically)."""
        async with self._database.transaction(read_only=True) as tx:
            revoked = await tx.sessions.revoked_since(self.revoked.since())
        self.revoked.add_all(revoked)

    async def sync(self) -> None:
        """What every server process polls for: revocations and signing keys."""
        await self.sync_revocations()
        if self._keys.managed:
            self._ring.replace(await self._keys.load())

    async def purge(self) -> int:
        """Delete expired sessions, and revoked ones a day after their revocation (long after
        every process has learnt of it); their refresh tokens go with them."""
        now = int(self._clock())
        async with self._database.transaction() as tx:
            removed = await tx.sessions.purge(now=now, keep_revoked_seconds=86400)
            await tx.refresh_tokens.clear_sealed(created_before=now - self._grace_seconds)
        if removed:
            log.info("purged %d sessions", removed, extra={"event": "sessions.purged"})
        return removed

    # -- what operators ask ------------------------------------------------------

    async def ready(self) -> dict[str, str]:
        """Each dependency's check, all "ok"; else NotReadyError carrying them: the database
        and (when configured) Redis answer within the timeout, and the revocation
        subscription (in a server with Redis) is connected."""
        checks = {"database": await self._answers(self._database.ping())}
        if self._redis:
            checks["redis"] = await self._answers(self._throttle.ping())
        if self.bus is not None:
            # Checked by the bus's own heartbeat: a subscription can die silently while
            # the rate-limit counters still reach Redis.
            checks["redis_pubsub"] = "ok" if self.bus.connected else "unreachable"
        if any(state != "ok" for state in checks.values()):
            raise NotReadyError(checks)
        return checks

    async def _answers(self, ping: Awaitable[None]) -> str:
        try:
            with anyio.fail_after(self._ready_timeout):
                await ping
        except (StorageUnavailableError, TimeoutError):
            return "unreachable"
        return "ok"

    async def live_sessions(self) -> int:
        """How many sessions are neither expired nor revoked."""
        async with self._database.transaction(read_only=True) as tx:
            return await tx.sessions.count_live(now=int(self._clock()))

    async def gauges(self) -> dict[str, float]:
        """The gauges ``/metrics`` adds to its counters; one the database cannot answer in
        time is missing rather than wrong."""
        found = {"authgate_revoked_sessions_in_memory": float(len(self.revoked))}
        try:
            with anyio.fail_after(_GAUGE_TIMEOUT_SECONDS):
                found["authgate_active_sessions"] = float(await self.live_sessions())
        except (StorageUnavailableError, TimeoutError):
            pass
        return found
