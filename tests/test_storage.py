"""What is at rest: the schema, hashed refresh tokens, argon2id passwords, nothing in clear."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import argon2
import httpx
import pytest
import sqlalchemy as sa

from authgate.config import Settings
from authgate.http.app import build_app
from authgate.passwords import PasswordHasher
from authgate.runtime import build_services
from authgate.storage import Database, schema
from tests.conftest import PASSWORD, TEST_KEY
from tests.databases import migrate
from tests.helpers import HANG_SECONDS, refresh, signed_in

pytestmark = pytest.mark.anyio


async def dump(database: Database) -> str:
    """Every row of every table, as text."""
    lines: list[str] = []
    async with database.engine.connect() as connection:
        for table in ("users", "user_roles", "roles", "sessions", "refresh_tokens"):
            rows = (await connection.execute(sa.text(f"SELECT * FROM {table}"))).all()  # noqa: S608
            lines.extend(f"{table}: {tuple(row)}" for row in rows)
    return "\n".join(lines)


async def test_migration_creates_the_three_roles_and_is_at_head(database: Database) -> None:
    async with database.engine.connect() as connection:
        names = (
            (await connection.execute(sa.text("SELECT name FROM roles ORDER BY id")))
            .scalars()
            .all()
        )
    assert names == ["user", "moderator", "admin"]
    assert await schema.current(database) == schema.head()


async def test_migrating_twice_changes_nothing(
    client: httpx.AsyncClient, database: Database
) -> None:
    await signed_in(client)  # a user, a session, a refresh token
    before = await dump(database)
    assert "users: " in before
    await schema.upgrade(database)
    assert await schema.current(database) == schema.head()
    assert await dump(database) == before


async def test_no_default_accounts_exist(database: Database) -> None:
    async with database.engine.connect() as connection:
        count = (await connection.execute(sa.text("SELECT COUNT(*) FROM users"))).scalar_one()
    assert count == 0


async def test_no_refresh_token_or_password_is_stored_in_clear(
    client: httpx.AsyncClient, database: Database
) -> None:
    signed = await signed_in(client)
    rotated = (await refresh(client, signed["refreshToken"])).json()
    issued = [
        signed["refreshToken"],
        rotated["refreshToken"],
        signed["accessToken"],
        rotated["accessToken"],
    ]
    text = await dump(database)
    assert "refresh_tokens" in text
    for secret in [*issued, PASSWORD]:
        assert secret not in text


async def test_passwords_are_argon2id_with_a_unique_salt(
    client: httpx.AsyncClient, database: Database
) -> None:
    await signed_in(client, "alice")
    await signed_in(client, "bob")  # the same password
    async with database.engine.connect() as connection:
        hashes = (
            (await connection.execute(sa.text("SELECT password_hash FROM users"))).scalars().all()
        )
    assert len(set(hashes)) == 2
    assert all(h.startswith("$argon2id$v=19$") for h in hashes)


async def test_default_hash_parameters_meet_the_owasp_floor(
    database: Database, tmp_path: Path
) -> None:
    """The hash a service with the default settings stores: argon2id, m >= 19 MiB, t >= 2, p >= 1
    (the OWASP minimum), and it verifies at sign-in."""
    defaults = Settings.from_mapping({"signing_key": TEST_KEY, "data_dir": str(tmp_path)})
    services = await build_services(defaults, database)
    try:
        transport = httpx.ASGITransport(app=build_app(services, defaults))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://authgate.test"
        ) as client:
            await signed_in(client)
    finally:
        await services.aclose()
    async with database.engine.connect() as connection:
        stored = (await connection.execute(sa.text("SELECT password_hash FROM users"))).scalar_one()
    parameters = argon2.extract_parameters(stored)
    assert parameters.type is argon2.Type.ID
    assert parameters.memory_cost >= 19456
    assert parameters.time_cost >= 2
    assert parameters.parallelism >= 1


async def test_old_hashes_are_upgraded_at_sign_in(
    client: httpx.AsyncClient, database: Database
) -> None:
    weak = await PasswordHasher(memory_kib=8, time_cost=1, parallelism=1).hash(PASSWORD)
    await signed_in(client)
    async with database.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE users SET password_hash = :h"), {"h": weak})
    assert (
        await client.post("/api/auth/signin", json={"username": "alice", "password": PASSWORD})
    ).status_code == 200
    async with database.engine.connect() as connection:
        stored = (await connection.execute(sa.text("SELECT password_hash FROM users"))).scalar_one()
    assert stored != weak
    assert stored.startswith("$argon2id$")


async def test_a_busy_pool_keeps_its_connections_instead_of_reopening_them(
    database_url: str,
) -> None:
    """More concurrent requests than connections wait for one; none is opened per use (an
    overflowing pool closed each extra connection as it came back: docs/benchmarks.md)."""
    database = Database.connect(database_url, pool_size=3)
    opened = 0

    @sa.event.listens_for(database.engine.sync_engine, "connect")
    def _count(*_: object) -> None:
        nonlocal opened
        opened += 1

    async def read() -> None:
        async with database.transaction(read_only=True) as tx:
            await tx.connection.execute(sa.text("SELECT 1"))
            await anyio.sleep(0)  # hold the connection while the others ask for one

    try:
        for _ in range(5):
            async with anyio.create_task_group() as group:
                for _ in range(12):
                    group.start_soon(read)
    finally:
        await database.close()
    assert 1 <= opened <= 3


async def test_a_writer_waiting_for_sqlites_lock_leaves_the_event_loop_free(tmp_path: Path) -> None:
    """SQLite runs on the event loop (storage/sqlite_driver.py): a writer that finds another
    process's write lock waits with asyncio sleeps, and reads go on meanwhile. Were it to
    wait in SQLite's busy handler (as aiosqlite's thread did), the loop would stop for the
    whole timeout, the lock would be released only after it, and the writer would fail."""
    path = tmp_path / "busy.db"
    await migrate(f"sqlite:///{path}")
    database = Database.connect(f"sqlite:///{path}", timeout_seconds=5)
    holder = sqlite3.connect(path, isolation_level=None)

    async def write() -> None:
        async with database.transaction() as tx:
            await tx.connection.execute(sa.text("DELETE FROM audit_log"))

    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, as another process would
        with anyio.fail_after(HANG_SECONDS):
            writer = asyncio.create_task(write())
            for _ in range(10):
                await asyncio.sleep(0)
            async with database.transaction(read_only=True) as tx:
                assert (await tx.connection.execute(sa.text("SELECT 1"))).scalar() == 1
            assert not writer.done()  # still waiting for the lock, without holding the loop
            holder.execute("ROLLBACK")
            await writer
    finally:
        holder.close()
        await database.close()


async def test_refreshes_batched_on_sqlite_fail_alone(tmp_path: Path) -> None:
    """SQLite's fast path commits the works queued in one turn of the loop together
    (``Database.in_sqlite_batch``): one that fails is rolled back alone, the others commit."""
    path = tmp_path / "batch.db"
    await migrate(f"sqlite:///{path}")
    database = Database.connect(f"sqlite:///{path}")

    def writing(name: str, *, fails: bool) -> Callable[[sqlite3.Connection], Awaitable[str]]:
        async def work(connection: sqlite3.Connection) -> str:
            connection.execute(
                "INSERT INTO users (username, username_key, email, email_key, password_hash,"
                " enabled, created_at) VALUES (?, ?, ?, ?, '!', 1, 0)",
                (name, name, f"{name}@example.com", f"{name}@example.com"),
            )
            if fails:
                raise LookupError(name)
            return name

        return work

    try:
        answers = await asyncio.gather(
            *(
                database.in_sqlite_batch(writing(name, fails=name == "b"))
                for name in ("a", "b", "c")
            ),
            return_exceptions=True,
        )
        assert answers[0::2] == ["a", "c"]
        assert isinstance(answers[1], LookupError)
        async with database.transaction(read_only=True) as tx:
            names = await tx.connection.scalars(sa.text("SELECT username FROM users"))
            assert sorted(names) == ["a", "c"]
    finally:
        await database.close()
