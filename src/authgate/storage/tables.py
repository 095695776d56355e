"""The schema as SQLAlchemy Core tables; migrations create exactly this."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()


def _key(length: int) -> sa.types.TypeEngine[str]:
    """A string compared byte for byte everywhere (MariaDB's default collation folds accents)."""
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, collation="utf8mb4_bin"), "mysql", "mariadb"
    )


_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(32), nullable=False, unique=True),
    **_MYSQL,
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("username_key", _key(64), nullable=False, unique=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("email_key", _key(254), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    **_MYSQL,
)

user_roles = sa.Table(
    "user_roles",
    metadata,
    sa.Column(
        "user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "role_id", sa.Integer, sa.ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    ),
    **_MYSQL,
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", _key(32), primary_key=True),
    sa.Column(
        "user_id",
        sa.Integer,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True, index=True),
    sa.Column("last_used_at", sa.BigInteger, nullable=True),
    sa.Column("client_address", sa.String(64), nullable=True),
    sa.Column("user_agent", sa.String(256), nullable=True),
    **_MYSQL,
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", _key(64), primary_key=True),
    # One key per generation: two processes rotating at once cannot both win.
    sa.Column("generation", sa.Integer, nullable=False, unique=True),
    sa.Column("algorithm", sa.String(16), nullable=False),
    sa.Column("public_jwk", sa.Text, nullable=False),
    # The private JWK as compact JWE under AUTHGATE_KEY_ENCRYPTION_KEY.
    sa.Column("sealed_private_jwk", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("activates_at", sa.BigInteger, nullable=False),
    **_MYSQL,
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # SHA-256 of the token, hex; the token itself is never stored.
    sa.Column("token_hash", _key(64), nullable=False, unique=True),
    sa.Column(
        "session_id",
        _key(32),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("parent_id", sa.Integer, nullable=True, index=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("used_at", sa.BigInteger, nullable=True),
    # Only with a refresh grace window: this token sealed under a server key, so a lost
    # answer can be repeated; cleared once spent or past the window.
    sa.Column("sealed_token", sa.Text, nullable=True),
    **_MYSQL,
)


audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("actor_id", sa.Integer, nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target_user_id", sa.Integer, nullable=True, index=True),
    sa.Column("detail", sa.String(512), nullable=False, server_default=""),
    sa.Column("client_address", sa.String(64), nullable=True),
    **_MYSQL,
)
