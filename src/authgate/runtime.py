"""Assembles a running service from settings: database, hasher, token codec, service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from authgate.config import Settings
from authgate.errors import ConfigurationError
from authgate.keys import signing_key
from authgate.models import Clock, system_clock
from authgate.passwords import PasswordHasher
from authgate.service import AuthService
from authgate.storage import Database, schema
from authgate.throttle import Throttle
from authgate.tokens import TokenCodec


def build_service(
    settings: Settings, database: Database, *, clock: Clock = system_clock
) -> AuthService:
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        concurrency=settings.hash_concurrency,
    )
    tokens = TokenCodec(
        signing_key(settings),
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        leeway_seconds=settings.clock_leeway_seconds,
        max_token_bytes=settings.max_token_bytes,
        cache_size=settings.token_cache_size,
        clock=clock,
    )
    throttle = Throttle(
        sign_in_per_address=settings.rate_limit_sign_in_per_address,
        sign_in_failures_per_account=settings.rate_limit_sign_in_failures_per_account,
        sign_up_per_address=settings.rate_limit_sign_up_per_address,
        refresh_per_address=settings.rate_limit_refresh_per_address,
        redis_url=settings.redis_url,
    )
    return AuthService(
        database,
        hasher,
        tokens,
        throttle,
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
        refresh_rotation=settings.refresh_rotation,
        password_min_length=settings.password_min_length,
        password_max_length=settings.password_max_length,
        clock=clock,
    )


def open_database(settings: Settings) -> Database:
    return Database.connect(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        timeout_seconds=settings.db_timeout_seconds,
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


@asynccontextmanager
async def running_service(
    settings: Settings, *, clock: Clock = system_clock
) -> AsyncIterator[AuthService]:
    """A service on an up-to-date schema; refuses to start on an unmigrated database."""
    database = open_database(settings)
    try:
        await ensure_schema(database)
        service = build_service(settings, database, clock=clock)
        try:
            yield service
        finally:
            await service.aclose()
    finally:
        await database.close()
