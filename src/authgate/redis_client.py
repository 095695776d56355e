"""Connections to Redis (the only importer of coredis), for the rate limits and the revocation bus.

Both get their connections here, with every connect and read bounded by the same timeout,
and both treat the same failures as "Redis is unreachable" (``UNAVAILABLE``): the rate
limits answer 503, the bus retries and lets the database poll carry revocations.
"""

from __future__ import annotations

import coredis
from coredis.commands.pubsub import PubSub

__all__ = ["UNAVAILABLE", "Client", "ConnectionPool", "PubSub", "client", "connection_pool"]

#: What a call to an unreachable Redis raises: the client's errors, a reset or refused
#: socket (OSError; TimeoutError is one too), a connection closed mid-reply (EOFError).
UNAVAILABLE: tuple[type[Exception], ...] = (coredis.exceptions.RedisError, OSError, EOFError)

Client = coredis.Redis[bytes]
ConnectionPool = coredis.ConnectionPool


def client(url: str, *, timeout_seconds: float) -> Client:
    """A client of its own (its pool closes with ``client.connection_pool.disconnect()``)."""
    return coredis.Redis.from_url(
        url, connect_timeout=timeout_seconds, stream_timeout=timeout_seconds
    )


def connection_pool(url: str, *, timeout_seconds: float) -> ConnectionPool:
    """A pool for a library that takes one (``limits``), so that its owner can close it."""
    return coredis.ConnectionPool.from_url(
        url, connect_timeout=timeout_seconds, stream_timeout=timeout_seconds
    )
