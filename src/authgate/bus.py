"""Revocations spread through Redis pub/sub, when Redis is configured (connections from
``redis_client.py``).

Every process publishes the revocations it makes and subscribes to everyone else's, so a
revoked session's access tokens are refused everywhere within milliseconds. The database
poll stays underneath: a message lost while Redis was away still arrives within one poll
interval.

A subscription can die without a word (a partition, a proxy dropping idle connections):
the subscriber sends itself a heartbeat through Redis every few seconds, and when one does
not come back within the timeout it drops the connection, logs it, reports itself
unconnected (``/readyz``) and subscribes again on a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

import anyio

from authgate import redis_client
from authgate.redis_client import UNAVAILABLE, PubSub
from authgate.revocations import RevokedSessions

log = logging.getLogger("authgate.bus")

CHANNEL = "authgate:revocations"
_HEARTBEAT = CHANNEL + ":heartbeat:"


class RevocationBus:
    def __init__(
        self,
        redis_url: str,
        revoked: RevokedSessions,
        *,
        timeout_seconds: float = 3,
        heartbeat_seconds: float = 5,
        retry_seconds: float = 1,
    ) -> None:
        """Each Redis call gives up after ``timeout_seconds``; the subscription is checked
        every ``heartbeat_seconds``; a failed loop starts again after ``retry_seconds``."""
        self._url = redis_url
        self._revoked = revoked
        self._timeout = timeout_seconds
        self._heartbeat_seconds = heartbeat_seconds
        self._retry_seconds = retry_seconds
        self._heartbeat_channel = _HEARTBEAT + secrets.token_hex(8)  # this process's own
        self._outbox: asyncio.Queue[tuple[str, int]] = asyncio.Queue(maxsize=10_000)
        self._subscribed = False
        self._lost = False  # the subscription is down, and that has been logged
        self._publish_failing = False
        revoked.on_local_add = self._queue

    @property
    def connected(self) -> bool:
        """The subscription answered its latest heartbeat (readiness)."""
        return self._subscribed

    def _queue(self, session_id: str, revoked_at: int) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # the database poll still carries it
            self._outbox.put_nowait((session_id, revoked_at))

    async def run(self) -> None:
        """Publish and subscribe until cancelled, reconnecting after failures."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._forever, self._publish, self._publish_failed)
            tasks.start_soon(self._forever, self._subscribe, self._subscription_lost)

    async def _forever(
        self, loop: Callable[[], Awaitable[None]], failed: Callable[[], None]
    ) -> None:
        while True:
            try:
                await loop()
            except UNAVAILABLE:
                failed()
                await anyio.sleep(self._retry_seconds)

    def _subscription_lost(self) -> None:
        if not self._lost:  # once per outage, not once per retry
            self._lost = True
            log.warning(
                "redis pub/sub unavailable; revocations travel by database poll until it is back",
                extra={"event": "bus.unavailable"},
            )

    def _publish_failed(self) -> None:
        if not self._publish_failing:
            self._publish_failing = True
            log.warning(
                "cannot publish revocations on redis; the database poll carries them",
                extra={"event": "bus.publish_failed"},
            )

    def _client(self) -> redis_client.Client:
        return redis_client.client(self._url, timeout_seconds=self._timeout)

    async def _publish(self) -> None:
        client = self._client()
        try:
            while True:
                session_id, revoked_at = await self._outbox.get()
                try:
                    with anyio.fail_after(self._timeout):
                        await client.publish(CHANNEL, f"{session_id}:{revoked_at}")
                    self._publish_failing = False
                except BaseException:
                    self._queue(session_id, revoked_at)  # retried after reconnecting
                    raise
        finally:
            client.connection_pool.disconnect()

    async def _subscribe(self) -> None:
        client = self._client()
        pubsub = client.pubsub(
            channels=[CHANNEL, self._heartbeat_channel], ignore_subscribe_messages=True
        )
        beats: asyncio.Queue[str] = asyncio.Queue()
        reader: asyncio.Task[None] | None = None
        try:
            with anyio.fail_after(self._timeout):
                await pubsub.initialize()
            reader = asyncio.create_task(self._read(pubsub, beats))
            await self._heartbeat(client, beats)  # returns only by raising: a missed beat
        finally:
            self._subscribed = False
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE):
                    await reader
            # No goodbye (UNSUBSCRIBE) over a connection that may not answer: drop it.
            pubsub.reset()
            client.connection_pool.disconnect()

    async def _read(self, pubsub: PubSub[bytes], beats: asyncio.Queue[str]) -> None:
        heartbeat = (self._heartbeat_channel, self._heartbeat_channel.encode())
        async for message in pubsub:
            data = message["data"]
            text = data.decode() if isinstance(data, bytes) else str(data)
            if message["channel"] in heartbeat:
                beats.put_nowait(text)
                continue
            session_id, _, revoked_at = text.partition(":")
            if session_id and revoked_at.isdigit():
                self._revoked.learn(session_id, int(revoked_at))

    async def _heartbeat(self, client: redis_client.Client, beats: asyncio.Queue[str]) -> None:
        while True:
            nonce = secrets.token_hex(8)
            with anyio.fail_after(self._timeout):
                # PUBLISH counts the subscribers that got it: none yet when Redis has not
                # processed our SUBSCRIBE, or has dropped the subscription.
                while not await client.publish(self._heartbeat_channel, nonce):
                    await anyio.sleep(0.05)
                while await beats.get() != nonce:
                    pass
            if not self._subscribed:
                self._subscribed = True
                if self._lost:
                    self._lost = False
                    log.info(
                        "redis pub/sub reconnected; revocations travel through it again",
                        extra={"event": "bus.reconnected"},
                    )
            await anyio.sleep(self._heartbeat_seconds)
