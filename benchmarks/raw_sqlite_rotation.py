"""The floor for refresh on SQLite: the same rotation with the stdlib ``sqlite3`` module.

As ``raw_rotation.py`` is for PostgreSQL: ``--chains`` sessions, each rotating its refresh
token in turn, one transaction per rotation, with the statements authgate's refresh runs:
find the token by its SHA-256 (joined to its session), claim it (``UPDATE ... WHERE used_at
IS NULL``), insert the successor, read the user and roles, stamp the session's last use.
One process, one connection, on authgate's own database file with the settings authgate
gives its connections (WAL, ``synchronous=NORMAL``, foreign keys, ``BEGIN IMMEDIATE``; see
``storage/database.py``). No HTTP, no JSON, no JWT, no event loop: only the database work.
Prints one JSON line: ``{"rotations": N, "seconds": S}``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from raw_rotation import IDLE_SECONDS, digest

FIND = """
SELECT rt.id, rt.session_id, s.user_id, rt.expires_at, rt.used_at,
       s.expires_at AS session_expires_at, s.revoked_at
FROM refresh_tokens AS rt JOIN sessions AS s ON s.id = rt.session_id
WHERE rt.token_hash = ?
"""
CLAIM = "UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL"
INSERT = """
INSERT INTO refresh_tokens (token_hash, session_id, parent_id, created_at, expires_at)
VALUES (?, ?, ?, ?, ?)
"""
TOUCH = "UPDATE sessions SET last_used_at = ? WHERE id = ?"
USER = """
SELECT u.id, u.username, u.email, u.password_hash, u.enabled, ur.role_id
FROM users AS u LEFT OUTER JOIN user_roles AS ur ON u.id = ur.user_id
WHERE u.id = ? ORDER BY u.id
"""
BUSY_TIMEOUT_MS = 30_000


def connect(path: Path) -> sqlite3.Connection:
    """A connection set up as authgate sets up its own (``_tune_sqlite``)."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return connection


def _setup(connection: sqlite3.Connection, chains: int) -> list[str]:
    """A user with the ``user`` role and one session per chain; each chain's first token."""
    now = int(time.time())
    name = f"raw-{secrets.token_hex(6)}"
    connection.execute("BEGIN IMMEDIATE")
    cursor = connection.execute(
        "INSERT INTO users (username, username_key, email, email_key, password_hash,"
        " enabled, created_at) VALUES (?, ?, ?, ?, 'unused', 1, ?)",
        (name, name, f"{name}@example.com", f"{name}@example.com", now),
    )
    user_id = cursor.lastrowid
    connection.execute("INSERT INTO user_roles (user_id, role_id) VALUES (?, 1)", (user_id,))
    tokens = []
    for _ in range(chains):
        session_id, token = secrets.token_hex(16), secrets.token_urlsafe(32)
        connection.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (session_id, user_id, now, now + IDLE_SECONDS),
        )
        connection.execute(INSERT, (digest(token), session_id, None, now, now + IDLE_SECONDS))
        tokens.append(token)
    connection.execute("COMMIT")
    return tokens


def rotate(connection: sqlite3.Connection, token: str) -> str:
    """Spend ``token`` and return its successor, or raise if the database refused."""
    now = int(time.time())
    successor = secrets.token_urlsafe(32)
    connection.execute("BEGIN IMMEDIATE")
    try:
        record = connection.execute(FIND, (digest(token),)).fetchone()
        if record is None or record[6] is not None or record[3] <= now:
            raise RuntimeError("the chain's token was not accepted")
        token_id, session_id, user_id, session_expires_at = (
            record[0],
            record[1],
            record[2],
            record[5],
        )
        if connection.execute(CLAIM, (now, token_id)).rowcount != 1:
            raise RuntimeError("the chain's token was already spent")
        expires_at = min(now + IDLE_SECONDS, session_expires_at)
        connection.execute(INSERT, (digest(successor), session_id, token_id, now, expires_at))
        rows = connection.execute(USER, (user_id,)).fetchall()
        if not rows or not rows[0][4]:
            raise RuntimeError("the chain's user is gone")
        connection.execute(TOUCH, (now, session_id))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return successor


def measure(path: Path, chains: int, duration_seconds: float, start_at: float) -> tuple[int, float]:
    """Rotations completed in about ``duration_seconds``, the chains taking turns, and the
    seconds they really took."""
    connection = connect(path)
    try:
        tokens = _setup(connection, chains)
        time.sleep(max(0.0, start_at - time.time()))
        started = time.monotonic()
        deadline = started + duration_seconds
        rotations = 0
        while time.monotonic() < deadline:
            for index, token in enumerate(tokens):
                tokens[index] = rotate(connection, token)
            rotations += len(tokens)
        return rotations, time.monotonic() - started
    finally:
        connection.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database", type=Path, required=True, help="a migrated SQLite file")
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch seconds")
    args = parser.parse_args(argv)
    rotations, seconds = measure(args.database, args.chains, args.duration, args.start_at)
    print(json.dumps({"rotations": rotations, "seconds": seconds}))


if __name__ == "__main__":
    main()
