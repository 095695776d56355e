"""Revoked sessions, held in memory so every protected request checks them in O(1).

An access token names its session (``sid``). When a session is revoked, its id
is kept here until the longest-lived access token it could have issued has
expired; after that the token's own ``exp`` refuses it, so memory stays
bounded by the revocations of one access-token lifetime.

The database is the source of truth: each process adds its own revocations at
once and picks up other processes' by polling ``sessions.revoked_at``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from authgate.models import Clock


class RevokedSessions:
    def __init__(self, *, retention_seconds: int, clock: Clock) -> None:
        self._retention = retention_seconds
        self._clock = clock
        self._until: dict[str, float] = {}
        #: Told of every revocation made here (the Redis bus publishes them).
        self.on_local_add: Callable[[str, int], None] | None = None
        #: The newest ``revoked_at`` seen, to poll from (see :meth:`since`).
        self._newest = int(clock()) - retention_seconds

    def __contains__(self, session_id: str) -> bool:
        return session_id in self._until

    def __len__(self) -> int:
        return len(self._until)

    def add(self, session_id: str, revoked_at: int) -> None:
        """A revocation made by this process."""
        self.learn(session_id, revoked_at)
        if self.on_local_add is not None:
            self.on_local_add(session_id, revoked_at)

    def learn(self, session_id: str, revoked_at: int) -> None:
        """A revocation made anywhere (this process, the database poll, the Redis bus)."""
        self._until[session_id] = revoked_at + self._retention
        self._newest = max(self._newest, revoked_at)

    def add_all(self, revoked: Iterable[tuple[str, int]]) -> None:
        for session_id, revoked_at in revoked:
            self.learn(session_id, revoked_at)
        self.prune()

    def since(self) -> int:
        """Where the next poll starts: a little before the newest revocation seen, because
        another process may commit a revocation stamped with an earlier second (or a clock
        that runs slightly behind) after we read."""
        return self._newest - 5

    def prune(self) -> None:
        now = self._clock()
        for session_id in [sid for sid, until in self._until.items() if until <= now]:
            del self._until[session_id]
