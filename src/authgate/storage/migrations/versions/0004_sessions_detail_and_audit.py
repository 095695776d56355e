"""Sessions remember their last use, address and user agent; the admin audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_used_at", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("client_address", sa.String(64), nullable=True))
        batch.add_column(sa.Column("user_agent", sa.String(256), nullable=True))
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("actor_id", sa.Integer, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_user_id", sa.Integer, nullable=True),
        sa.Column("detail", sa.String(512), nullable=False, server_default=""),
        sa.Column("client_address", sa.String(64), nullable=True),
        **_MYSQL,
    )
    op.create_index("ix_audit_log_target_user_id", "audit_log", ["target_user_id"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_index("ix_sessions_expires_at", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("user_agent")
        batch.drop_column("client_address")
        batch.drop_column("last_used_at")
