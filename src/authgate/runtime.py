"""Assembles the running services from settings: database, hasher, token codec, services."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from authgate import signing
from authgate.accounts import Accounts
from authgate.admin import Admin
from authgate.bus import RevocationBus
from authgate.config import Settings
from authgate.errors import ConfigurationError, StorageUnavailableError
from authgate.keyfiles import decode_kek, existing_signing_key, key_encryption_key, signing_key
from authgate.keys import ASYMMETRIC, KeyRing
from authgate.models import Clock, system_clock
from authgate.passwords import PasswordHasher
from authgate.refresh import RefreshService
from authgate.refresh_rule import RefreshPolicy
from authgate.revocations import RevokedSessions
from authgate.service import AuthService
from authgate.services import Services
from authgate.signing import KeyState, SigningKeys
from authgate.storage import Database, schema
from authgate.throttle import Throttle
from authgate.tokens import TokenCodec, accepted_for_seconds
from authgate.upkeep import Upkeep

log = logging.getLogger("authgate.runtime")


def _derived_key(settings: Settings, purpose: bytes) -> bytes:
    """A key for one purpose, derived from a secret that neither the database nor Redis
    holds (the key-encryption key, or the HS256 key)."""
    managed = settings.signing_algorithm in ASYMMETRIC
    secret = key_encryption_key(settings) if managed else signing_key(settings)
    return hashlib.sha256(b"authgate/" + purpose + b"/" + secret).digest()


def _grace_key(settings: Settings) -> bytes:
    """A key for sealing refresh tokens during the grace window."""
    return _derived_key(settings, b"refresh-grace")


def _throttle_key(settings: Settings) -> bytes:
    """The HMAC key for rate-limit counters' names, so that no name or address typed by a
    client is stored in clear; every process derives the same one."""
    return _derived_key(settings, b"throttle")


def signing_keys(
    settings: Settings, database: Database, *, clock: Clock = system_clock
) -> SigningKeys:
    managed = settings.signing_algorithm in ASYMMETRIC
    return SigningKeys(
        database,
        algorithm=settings.signing_algorithm,
        kek=key_encryption_key(settings) if managed else None,
        hs256_secret=None if managed else signing_key(settings),
        retire_after_seconds=_accepted_seconds(settings),
        publish_seconds=settings.key_publish_seconds,
        clock=clock,
    )


def _accepted_seconds(settings: Settings) -> int:
    """How long after it is issued an access token may still be accepted: a superseded key
    verifies that long, and a revoked session is remembered that long."""
    return accepted_for_seconds(settings.access_token_ttl_seconds, settings.clock_leeway_seconds)


async def build_services(
    settings: Settings,
    database: Database,
    *,
    clock: Clock = system_clock,
    hash_processes: bool = False,
) -> Services:
    keys = signing_keys(settings, database, clock=clock)
    ring = KeyRing(await keys.load(), clock=clock)
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        # Several workers share the cores: by default they split them, rather than each
        # running a hash per core (which only queues threads; see docs/benchmarks.md).
        concurrency=settings.hash_concurrency or max(1, (os.cpu_count() or 1) // settings.workers),
        processes=hash_processes,
    )
    tokens = TokenCodec(
        ring,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        leeway_seconds=settings.clock_leeway_seconds,
        max_token_bytes=settings.max_token_bytes,
        cache_size=settings.token_cache_size,
        clock=clock,
        encryption_key=(
            None
            if settings.token_encryption_key is None
            else decode_kek(settings.token_encryption_key, "AUTHGATE_TOKEN_ENCRYPTION_KEY")
        ),
    )
    throttle = Throttle(
        key=_throttle_key(settings),
        sign_in_per_address=settings.rate_limit_sign_in_per_address,
        sign_in_failures_per_account_and_address=(
            settings.rate_limit_sign_in_failures_per_account_and_address
        ),
        sign_in_failures_per_account=settings.rate_limit_sign_in_failures_per_account,
        sign_up_per_address=settings.rate_limit_sign_up_per_address,
        refresh_per_address=settings.rate_limit_refresh_per_address,
        known_address_seconds=settings.rate_limit_known_address_seconds,
        redis_url=settings.redis_url,
        timeout_seconds=settings.db_timeout_seconds,
    )
    revoked = RevokedSessions(
        retention_seconds=_accepted_seconds(settings),
        clock=clock,
    )
    accounts = Accounts(
        database,
        hasher,
        throttle,
        revoked,
        reauthentication_window_seconds=settings.reauthentication_window_seconds,
        password_min_length=settings.password_min_length,
        password_max_length=settings.password_max_length,
        clock=clock,
    )
    policy = RefreshPolicy.from_settings(settings)
    refreshes = RefreshService(
        database,
        tokens,
        throttle,
        revoked,
        policy=policy,
        grace_key=_grace_key(settings) if policy.grace_window else b"",
        clock=clock,
    )
    auth = AuthService(
        database,
        hasher,
        tokens,
        throttle,
        revoked,
        accounts=accounts,
        refreshes=refreshes,
        clock=clock,
    )
    upkeep = Upkeep(
        database,
        revoked,
        keys,
        ring,
        throttle,
        redis=bool(settings.redis_url),
        ready_timeout_seconds=min(settings.db_timeout_seconds, 2),
        refresh_grace_seconds=policy.grace_seconds,
        clock=clock,
    )
    return Services(
        auth=auth,
        refreshes=refreshes,
        accounts=accounts,
        admin=Admin(database, revoked, accounts, clock=clock),
        upkeep=upkeep,
        keys=keys,
        key_ring=ring,
        hasher=hasher,
        throttle=throttle,
    )


def open_database(settings: Settings) -> Database:
    return Database.connect(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        timeout_seconds=settings.db_timeout_seconds,
        make_directory=not settings.database_url,  # the data directory's default database
    )


async def ensure_schema(database: Database) -> None:
    """Refuse to serve a database whose schema is behind (or ahead of) this version."""
    if await schema.current(database) != schema.head():
        raise ConfigurationError(
            "The database schema is not up to date: run `authgate migrate` first."
        )


async def check_database(settings: Settings) -> None:
    """Fail fast, before any worker starts: reachable, and at this version's schema."""
    database = open_database(settings)
    try:
        await ensure_schema(database)
    finally:
        await database.close()


async def key_states(settings: Settings, *, clock: Clock = system_clock) -> list[KeyState]:
    """What ``authgate keys list`` shows: every stored key as it is (any algorithm), and the
    HS256 key when that is the algorithm and a key exists. Creates no key and no file."""
    database = open_database(settings)
    try:
        await ensure_schema(database)
        async with database.transaction(read_only=True) as tx:
            stored = await tx.signing_keys.list()
    finally:
        await database.close()
    found = signing.key_states(
        stored,
        algorithm=settings.signing_algorithm,
        retire_after_seconds=_accepted_seconds(settings),
        now=clock(),
    )
    if settings.signing_algorithm in ASYMMETRIC:
        return found
    secret = existing_signing_key(settings)
    return found if secret is None else [signing.hs256_state(secret), *found]


async def _purge_periodically(upkeep: Upkeep, interval_seconds: int) -> None:
    """Keep storage bounded; every process may do it, deleting twice is harmless."""
    while True:
        await anyio.sleep(interval_seconds)
        try:
            await upkeep.purge()
        except StorageUnavailableError:
            log.warning("purge failed; retrying later", extra={"event": "sessions.purge_failed"})


async def _poll_revocations(upkeep: Upkeep, interval_ms: int) -> None:
    """Pick up other processes' revocations; a database hiccup only delays them."""
    while True:
        await anyio.sleep(interval_ms / 1000)
        try:
            await upkeep.sync()
        except StorageUnavailableError:
            log.warning(
                "revocation poll failed; retrying", extra={"event": "revocations.poll_failed"}
            )


@asynccontextmanager
async def running_service(
    settings: Settings, *, clock: Clock = system_clock, serving: bool = False
) -> AsyncIterator[Services]:
    """The services on an up-to-date schema; refuses to start on an unmigrated database.

    A server (``serving``) polls for sessions revoked by other processes, purges, and
    hashes passwords in its own low-priority processes.
    """
    database = open_database(settings)
    try:
        await ensure_schema(database)
        services = await build_services(settings, database, clock=clock, hash_processes=serving)
        upkeep = services.upkeep
        background: list[asyncio.Task[None]] = []
        try:
            if serving:
                await services.hasher.start()
                await upkeep.sync()
                background.append(
                    asyncio.create_task(
                        _poll_revocations(upkeep, settings.revocation_poll_milliseconds)
                    )
                )
                if settings.redis_url:
                    bus = RevocationBus(
                        settings.redis_url,
                        upkeep.revoked,
                        timeout_seconds=settings.db_timeout_seconds,
                    )
                    upkeep.bus = bus
                    background.append(asyncio.create_task(bus.run()))
                if settings.purge_interval_seconds:
                    background.append(
                        asyncio.create_task(
                            _purge_periodically(upkeep, settings.purge_interval_seconds)
                        )
                    )
            yield services
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await services.aclose()
    finally:
        await database.close()
