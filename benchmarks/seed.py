"""What the scenarios need before they run: users, refresh tokens, access tokens, stored rows."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
from argon2 import PasswordHasher, Type
from sqlalchemy.engine import make_url

#: Filler rows: refresh tokens per session (a rotated chain: all spent but the last).
TOKENS_PER_SESSION = 10


@dataclass(frozen=True)
class Accounts:
    """Users ``bench-1 .. bench-N``, all with ``password``; ``user_id`` is bench-1's."""

    count: int
    password: str
    user_id: int


def username(index: int) -> str:
    return f"bench-{index}"


def sign_up(base_url: str, count: int) -> Accounts:
    password = secrets.token_urlsafe(12)
    with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as client:
        for index in range(1, count + 1):
            name = username(index)
            body = {"username": name, "email": f"{name}@example.com", "password": password}
            client.post("/api/auth/signup", json=body).raise_for_status()
        signed_in = client.post(
            "/api/auth/signin", json={"username": username(1), "password": password}
        )
        signed_in.raise_for_status()
    return Accounts(count=count, password=password, user_id=int(signed_in.json()["id"]))


def refresh_tokens(base_url: str, accounts: Accounts, sessions: int) -> list[str]:
    """The first refresh token of ``sessions`` new sessions (one sign-in each)."""

    async def sign_in_all() -> list[str]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(
            base_url=base_url, timeout=60, trust_env=False, limits=limits
        ) as client:

            async def one(index: int) -> str:
                body = {"username": username(index % accounts.count + 1), "password": ""}
                body["password"] = accounts.password
                answer = await client.post("/api/auth/signin", json=body)
                answer.raise_for_status()
                return str(answer.json()["refreshToken"])

            return list(await asyncio.gather(*(one(i) for i in range(sessions))))

    return asyncio.run(sign_in_all())


def access_token(base_url: str, accounts: Accounts) -> str:
    with httpx.Client(base_url=base_url, timeout=30, trust_env=False) as client:
        answer = client.post(
            "/api/auth/signin", json={"username": username(1), "password": accounts.password}
        )
        answer.raise_for_status()
        return str(answer.json()["accessToken"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint_access_tokens(template: str, signing_key: str, count: int, path: Path) -> Path:
    """``count`` distinct access tokens, one per line, each a copy of ``template`` (a token
    the server issued) with a new ``jti``, signed again with the server's HS256 key.

    The server verifies each one in full, as it would a token it issued; minting them costs
    seconds where signing in as often would cost minutes of argon2. Refuses unless the
    template's own signature shows it is HS256 under ``signing_key``.
    """
    header, payload, signature = template.split(".")
    key = signing_key.encode()

    def sign(signing_input: str) -> str:
        return _b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())

    if not hmac.compare_digest(sign(f"{header}.{payload}"), signature):
        raise RuntimeError("the server's access tokens are not HS256 under AUTHGATE_SIGNING_KEY")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    with path.open("w") as out:
        for _ in range(count):
            claims["jti"] = secrets.token_urlsafe(12)
            body = _b64(json.dumps(claims, separators=(",", ":")).encode())
            out.write(f"{header}.{body}.{sign(f'{header}.{body}')}\n")
    return path


def write_lines(lines: list[str], path: Path) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


# -- a million stored refresh tokens ------------------------------------------


def seed_sqlite(database: Path, user_id: int, count: int) -> None:
    """``count`` refresh tokens in sessions of ten, written straight into the tables."""
    now = int(time.time())
    prefix = secrets.token_hex(4)
    sessions = [
        (hashlib.md5(f"{prefix}-{i}".encode()).hexdigest(), user_id, now, now + 86400)  # noqa: S324 - an id, not a digest of secrets
        for i in range(count // TOKENS_PER_SESSION + 1)
    ]
    tokens = sorted(
        (
            hashlib.sha256(f"filler-{prefix}-{i}".encode()).hexdigest(),
            sessions[i // TOKENS_PER_SESSION][0],
            now,
            now + 86400,
            None if i % TOKENS_PER_SESSION == TOKENS_PER_SESSION - 1 else now,
        )
        for i in range(count)
    )
    connection = sqlite3.connect(database, timeout=60)
    try:
        with connection:
            connection.executemany(
                "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                sessions,
            )
            connection.executemany(
                "INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at,"
                " used_at) VALUES (?, ?, ?, ?, ?)",
                tokens,
            )
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


_SEED_SESSIONS = """
INSERT INTO sessions (id, user_id, created_at, expires_at)
SELECT md5($1::text || g), $2::int, $3::bigint, $3::bigint + 86400
FROM generate_series(0, $4::int / $5::int) AS g
"""
_SEED_TOKENS = """
INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, used_at)
SELECT encode(sha256(convert_to('filler-' || $1::text || g, 'UTF8')), 'hex'),
       md5($1::text || (g / $4::int)), $2::bigint, $2::bigint + 86400,
       CASE WHEN g % $4::int = $4::int - 1 THEN NULL ELSE $2::bigint END
FROM generate_series(0, $3::int - 1) AS g
"""


def seed_postgres(url: str, user_id: int, count: int) -> None:
    """As :func:`seed_sqlite`, generated by PostgreSQL itself, then ANALYZE."""

    async def seed() -> None:
        connection = await asyncpg.connect(url)
        try:
            prefix, now, per = secrets.token_hex(4) + "-", int(time.time()), TOKENS_PER_SESSION
            await connection.execute(_SEED_SESSIONS, prefix, user_id, now, count, per)
            await connection.execute(_SEED_TOKENS, prefix, now, count, per)
            await connection.execute("ANALYZE sessions")
            await connection.execute("ANALYZE refresh_tokens")
        finally:
            await connection.close()

    asyncio.run(seed())


# -- PostgreSQL ---------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=name)
    return parsed.render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        return str(await connection.fetchval(statement))
    finally:
        await connection.close()


@contextmanager
def postgres_database(url: str) -> Iterator[str]:
    """A new database next to ``url``'s for this run, dropped afterwards."""
    name = f"authgate_bench_{secrets.token_hex(4)}"
    admin = _with_database(url, make_url(url).database or "postgres")
    asyncio.run(_admin(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(url, name)
    finally:
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_version(url: str) -> str:
    return asyncio.run(
        _admin(_with_database(url, make_url(url).database or ""), "SHOW server_version")
    )


# -- argon2 -------------------------------------------------------------------


def argon2_verify_seconds(
    *, memory_kib: int, time_cost: int, parallelism: int, samples: int = 7
) -> float:
    """The shortest time of one argon2id verify on this machine (one thread): the cost of the
    work itself, as free as possible of whatever else the machine was doing."""
    hasher = PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )
    password = secrets.token_urlsafe(12)
    stored = hasher.hash(password)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        hasher.verify(stored, password)
        times.append(time.perf_counter() - started)
    return min(times)
