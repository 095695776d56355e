"""Throwaway databases for the suite: a migrated SQLite template, and one database per run on
PostgreSQL and MariaDB when their URLs are set (dropped at the end of the run)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from authgate.storage import Database, schema
from authgate.storage.database import async_url

SERVER_URLS = {
    "postgresql": "AUTHGATE_TEST_POSTGRES_URL",
    "mysql": "AUTHGATE_TEST_MYSQL_URL",
}
DATA_TABLES = ("audit_log", "refresh_tokens", "sessions", "user_roles", "users", "signing_keys")


@dataclass
class Provisioned:
    backend: str
    url: str
    template: Path | None = None
    drop: str | None = None


async def migrate(url: str) -> None:
    database = Database.connect(url)
    try:
        await schema.upgrade(database)
    finally:
        await database.close()


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(async_url(url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


def provision(backend: str, workdir: Path) -> Provisioned:
    """A migrated database for one test run; raises if a configured server is unreachable."""
    if backend == "sqlite":
        template = workdir / "template.db"
        asyncio.run(migrate(f"sqlite:///{template}"))
        return Provisioned(backend, "", template=template)
    admin_url = os.environ[SERVER_URLS[backend]]
    name = f"authgate_test_{secrets.token_hex(4)}"
    asyncio.run(_admin(admin_url, f"CREATE DATABASE {name}"))
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(migrate(url))
    return Provisioned(backend, url, drop=admin_url)


def release(provisioned: Provisioned) -> None:
    if provisioned.drop is not None:
        name = sa.make_url(provisioned.url).database
        asyncio.run(_admin(provisioned.drop, f"DROP DATABASE IF EXISTS {name}"))


def fresh_url(provisioned: Provisioned, tmp_path: Path) -> str:
    """A database URL with the schema and no data: a copy of the template, or emptied tables."""
    if provisioned.template is not None:
        target = tmp_path / "authgate.db"
        shutil.copyfile(provisioned.template, target)
        return f"sqlite:///{target}"
    return provisioned.url


async def empty(database: Database) -> None:
    if database.backend == "sqlite":
        return
    async with database.engine.begin() as connection:
        for table in DATA_TABLES:
            await connection.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 - fixed names
