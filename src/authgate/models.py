"""Value objects shared by every layer: roles, users, sessions, claims, token pairs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

#: Seconds since the epoch; injected everywhere time matters so tests never sleep.
Clock = Callable[[], float]
system_clock: Clock = time.time


class Role(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"

    @property
    def authority(self) -> str:
        """The tutorial's wire name, e.g. ``ROLE_ADMIN``."""
        return f"ROLE_{self.value.upper()}"


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    email: str
    roles: frozenset[Role]
    password_hash: str = field(repr=False)
    enabled: bool = True


@dataclass(frozen=True)
class NewUser:
    """What sign-up stores: names already normalised, password already hashed."""

    username: str
    email: str
    password_hash: str = field(repr=False)
    roles: frozenset[Role]


@dataclass(frozen=True)
class AccessClaims:
    """The verified content of an access token; nothing past ``tokens`` sees a raw dict."""

    subject: str
    session_id: str
    roles: frozenset[Role]
    issued_at: int
    not_before: int
    expires_at: int
    token_id: str
    #: ``auth_time``: when the password was last proven in this session.
    authenticated_at: int | None = None

    @property
    def user_id(self) -> int:
        return int(self.subject)


@dataclass(frozen=True)
class RefreshRecord:
    """A stored refresh token (by digest) joined with its session and its owner's state."""

    id: int
    session_id: str
    user_id: int
    expires_at: int
    used_at: int | None
    session_expires_at: int
    session_created_at: int
    session_revoked_at: int | None
    owner_enabled: bool


@dataclass(frozen=True)
class SessionInfo:
    """One sign-in and the refresh tokens descended from it, as its owner may see it."""

    id: str
    user_id: int
    created_at: int
    expires_at: int
    last_used_at: int | None
    client_address: str | None
    user_agent: str | None
    revoked_at: int | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: int
    actor_id: int | None
    action: str
    target_user_id: int | None
    detail: str
    client_address: str | None


@dataclass(frozen=True)
class StoredKey:
    """A signing key as the database keeps it: the private half sealed."""

    kid: str
    generation: int
    algorithm: str
    public_jwk: str
    sealed_private_jwk: str = field(repr=False)
    created_at: int
    activates_at: int


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)


@dataclass(frozen=True)
class SignedIn:
    """The result of a sign-in: who, and the tokens for them."""

    user: User
    tokens: TokenPair
