"""A sealed copy of a refresh token for the optional grace window.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("sealed_token", sa.Text, nullable=True))
    op.create_index("ix_refresh_tokens_parent_id", "refresh_tokens", ["parent_id"])


def downgrade() -> None:
    op.drop_index("ix_refresh_tokens_parent_id", table_name="refresh_tokens")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_column("sealed_token")
