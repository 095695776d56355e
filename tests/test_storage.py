"""What is at rest: the schema, hashed refresh tokens, argon2id passwords, nothing in clear."""

from __future__ import annotations

import re

import anyio
import httpx
import pytest
import sqlalchemy as sa

from authgate.passwords import PasswordHasher
from authgate.storage import Database, schema
from tests.conftest import PASSWORD
from tests.helpers import refresh, signed_in

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


async def test_migrating_twice_changes_nothing(database: Database) -> None:
    await schema.upgrade(database)
    assert await schema.current(database) == schema.head()


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


async def test_default_hash_parameters_meet_the_owasp_floor() -> None:
    hasher = PasswordHasher(memory_kib=19456, time_cost=2, parallelism=1)
    encoded = await hasher.hash(PASSWORD)
    match = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", encoded)
    assert match is not None
    memory, time_cost, parallelism = map(int, match.groups())
    assert memory >= 19456
    assert time_cost >= 2
    assert parallelism >= 1
    assert await hasher.verify(encoded, PASSWORD)
    assert not await hasher.verify(encoded, PASSWORD + "X")
    assert not await hasher.verify(None, PASSWORD)


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
