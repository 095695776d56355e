"""Applying and checking migrations (Alembic), on the same async engine the server uses."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from authgate.storage.database import Database, unavailable_as_error

_SCRIPTS = Path(__file__).with_name("migrations")


def _config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    return ScriptDirectory.from_config(_config()).get_current_head() or ""


async def upgrade(database: Database) -> str | None:
    """Bring the schema to the newest revision (a no-op when it is already there); the
    revision it was at before (None: an empty database)."""
    from alembic import command  # heavy; only `authgate migrate` needs it

    def run(sync: sa.Connection) -> str | None:
        before = MigrationContext.configure(sync).get_current_revision()
        command.upgrade(_config(sync), "head")
        return before

    async with unavailable_as_error(database.engine.url), database.engine.begin() as connection:
        return await connection.run_sync(run)


async def current(database: Database) -> str | None:
    async with (
        database.bounded(),
        unavailable_as_error(database.engine.url),
        database.engine.connect() as connection,
    ):
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
