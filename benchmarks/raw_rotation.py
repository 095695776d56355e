"""The floor for refresh on PostgreSQL: the same rotation in raw asyncpg and hand-written SQL.

Each of ``--concurrency`` tasks owns one session and rotates its refresh token in a loop,
one transaction per rotation, with the statements authgate's refresh runs: find the token by
its SHA-256 (joined to its session), claim it (``UPDATE ... WHERE used_at IS NULL``), insert
the successor, read the user and roles, stamp the session's last use. No HTTP, no JSON, no
JWT: only the database work.
Prints one JSON line: ``{"rotations": N, "seconds": S}``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import Sequence

import asyncpg  # type: ignore[import-untyped]

FIND = """
SELECT rt.id, rt.session_id, s.user_id, rt.expires_at, rt.used_at,
       s.expires_at AS session_expires_at, s.revoked_at
FROM refresh_tokens AS rt JOIN sessions AS s ON s.id = rt.session_id
WHERE rt.token_hash = $1
"""
CLAIM = "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL"
INSERT = """
INSERT INTO refresh_tokens (token_hash, session_id, parent_id, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5)
"""
TOUCH = "UPDATE sessions SET last_used_at = $2 WHERE id = $1"
USER = """
SELECT u.id, u.username, u.email, u.password_hash, u.enabled, ur.role_id
FROM users AS u LEFT OUTER JOIN user_roles AS ur ON u.id = ur.user_id
WHERE u.id = $1 ORDER BY u.id
"""
IDLE_SECONDS = 7 * 86400


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _setup(pool: asyncpg.Pool, chains: int) -> list[str]:
    """A user with the ``user`` role and one session per chain; each chain's first token."""
    now = int(time.time())
    name = f"raw-{secrets.token_hex(6)}"
    async with pool.acquire() as connection, connection.transaction():
        user_id = await connection.fetchval(
            "INSERT INTO users (username, username_key, email, email_key, password_hash,"
            " enabled, created_at) VALUES ($1, $1, $2, $2, 'unused', true, $3) RETURNING id",
            name,
            f"{name}@example.com",
            now,
        )
        await connection.execute(
            "INSERT INTO user_roles (user_id, role_id) VALUES ($1, 1)", user_id
        )
        tokens = []
        for _ in range(chains):
            session_id, token = secrets.token_hex(16), secrets.token_urlsafe(32)
            await connection.execute(
                "INSERT INTO sessions (id, user_id, created_at, expires_at)"
                " VALUES ($1, $2, $3, $4)",
                session_id,
                user_id,
                now,
                now + IDLE_SECONDS,
            )
            await connection.execute(
                INSERT, digest(token), session_id, None, now, now + IDLE_SECONDS
            )
            tokens.append(token)
    return tokens


async def rotate(connection: asyncpg.Connection, token: str) -> str:
    """Spend ``token`` and return its successor, or raise if the database refused."""
    now = int(time.time())
    successor = secrets.token_urlsafe(32)
    async with connection.transaction():
        record = await connection.fetchrow(FIND, digest(token))
        if record is None or record["revoked_at"] is not None or record["expires_at"] <= now:
            raise RuntimeError("the chain's token was not accepted")
        if await connection.execute(CLAIM, record["id"], now) != "UPDATE 1":
            raise RuntimeError("the chain's token was already spent")
        expires_at = min(now + IDLE_SECONDS, record["session_expires_at"])
        await connection.execute(
            INSERT, digest(successor), record["session_id"], record["id"], now, expires_at
        )
        rows = await connection.fetch(USER, record["user_id"])
        if not rows or not rows[0]["enabled"]:
            raise RuntimeError("the chain's user is gone")
        await connection.execute(TOUCH, record["session_id"], now)
    return successor


async def measure(
    url: str, concurrency: int, duration_seconds: float, start_at: float
) -> tuple[int, float]:
    """Rotations completed by ``concurrency`` chains in about ``duration_seconds``, and the
    seconds they really took."""
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    try:
        tokens = await _setup(pool, concurrency)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.monotonic()
        deadline = started + duration_seconds

        async def chain(token: str) -> int:
            done = 0
            async with pool.acquire() as connection:
                while time.monotonic() < deadline:
                    token = await rotate(connection, token)
                    done += 1
            return done

        rotations = sum(await asyncio.gather(*(chain(token) for token in tokens)))
        return rotations, time.monotonic() - started
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="postgresql://... of a migrated database")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch seconds")
    args = parser.parse_args(argv)
    rotations, seconds = asyncio.run(
        measure(args.url, args.concurrency, args.duration, args.start_at)
    )
    print(json.dumps({"rotations": rotations, "seconds": seconds}))


if __name__ == "__main__":
    main()
