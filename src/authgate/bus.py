"""Revocations spread through Redis pub/sub, when Redis is configured.

Every process publishes the revocations it makes and subscribes to everyone else's, so a
revoked session's access tokens are refused everywhere within milliseconds. The database
poll stays underneath: a message lost while Redis was away still arrives within one poll
interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import anyio
import coredis

from authgate.revocations import RevokedSessions

log = logging.getLogger("authgate.bus")

CHANNEL = "authgate:revocations"


class RevocationBus:
    def __init__(self, redis_url: str, revoked: RevokedSessions) -> None:
        self._url = redis_url
        self._revoked = revoked
        self._outbox: asyncio.Queue[tuple[str, int]] = asyncio.Queue(maxsize=10_000)
        revoked.on_local_add = self._queue

    def _queue(self, session_id: str, revoked_at: int) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # the database poll still carries it
            self._outbox.put_nowait((session_id, revoked_at))

    async def run(self) -> None:
        """Publish and subscribe until cancelled, reconnecting after failures."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._forever, self._publish)
            tasks.start_soon(self._forever, self._subscribe)

    async def _forever(self, loop: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await loop()
            except (coredis.exceptions.RedisError, OSError, TimeoutError):
                log.warning(
                    "redis unavailable; revocations travel by database poll meanwhile",
                    extra={"event": "bus.unavailable"},
                )
                await anyio.sleep(1)

    def _client(self) -> coredis.Redis[bytes]:
        return coredis.Redis.from_url(self._url, connect_timeout=2, protocol_version=2)

    async def _publish(self) -> None:
        client = self._client()
        while True:
            session_id, revoked_at = await self._outbox.get()
            try:
                await client.publish(CHANNEL, f"{session_id}:{revoked_at}")
            except BaseException:
                self._queue(session_id, revoked_at)  # retried after reconnecting
                raise

    async def _subscribe(self) -> None:
        client = self._client()
        async with client.pubsub(channels=[CHANNEL], ignore_subscribe_messages=True) as pubsub:
            async for message in pubsub:
                data = message["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                session_id, _, revoked_at = text.partition(":")
                if session_id and revoked_at.isdigit():
                    self._revoked.learn(session_id, int(revoked_at))
