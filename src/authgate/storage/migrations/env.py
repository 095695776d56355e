"""Alembic environment: runs on the connection authgate hands over (see ``storage.schema``)."""

from __future__ import annotations

from alembic import context

from authgate.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
