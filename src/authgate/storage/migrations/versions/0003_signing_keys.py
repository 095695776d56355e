"""Signing keys for EdDSA, ES256 and RS256, private halves sealed.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column(
            "kid",
            sa.String(64).with_variant(
                mysql.VARCHAR(64, collation="utf8mb4_bin"), "mysql", "mariadb"
            ),
            primary_key=True,
        ),
        sa.Column("generation", sa.Integer, nullable=False, unique=True),
        sa.Column("algorithm", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.Text, nullable=False),
        sa.Column("sealed_private_jwk", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("activates_at", sa.BigInteger, nullable=False),
        **_MYSQL,
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
