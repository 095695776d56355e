"""Request and response bodies as msgspec types: the tutorial's wire names live here only."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from authgate.errors import InvalidInputError, MalformedBodyError

T = TypeVar("T")

# Generous sanity bounds; the real rules (policy.py) answer with clearer messages.
Text = Annotated[str, msgspec.Meta(max_length=1024)]


class SignUpBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    username: Text
    email: Text
    password: Text
    roles: (
        Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=8)]
        | None
    ) = None


class SignInBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    username: Text
    password: Text


class RefreshBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    # Any: a missing or null token and a token of the wrong type get different answers.
    refreshToken: Any = None  # noqa: N815 - the tutorial's wire name


class MessageOut(msgspec.Struct, frozen=True):
    message: str


class SignedInOut(msgspec.Struct, frozen=True):
    """Sign-in with the cookie transport: who, and no token (they are in HttpOnly cookies)."""

    id: int
    username: str
    email: str
    roles: list[str]


class SignInOut(msgspec.Struct, frozen=True):
    id: int
    username: str
    email: str
    roles: list[str]
    accessToken: str  # noqa: N815
    refreshToken: str  # noqa: N815


class CredentialsOut(msgspec.Struct, frozen=True):
    """The tutorial's failed sign-in body: ``{"accessToken": null, "message": ...}``."""

    accessToken: None  # noqa: N815
    message: str


class TokensOut(msgspec.Struct, frozen=True):
    accessToken: str  # noqa: N815
    refreshToken: str  # noqa: N815


class KeySetOut(msgspec.Struct, frozen=True):
    """RFC 7517 JWK Set: public keys only."""

    keys: list[dict[str, str]]


class DiscoveryOut(msgspec.Struct, frozen=True):
    issuer: str
    jwks_uri: str
    id_token_signing_alg_values_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]


class ReauthenticationBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    currentPassword: Text | None = None  # noqa: N815


class PasswordChangeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    newPassword: Text  # noqa: N815
    currentPassword: Text | None = None  # noqa: N815


class EmailChangeBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    email: Text
    currentPassword: Text | None = None  # noqa: N815


class RolesBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    roles: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=8)]


class SessionOut(msgspec.Struct, frozen=True):
    id: str
    current: bool
    createdAt: int  # noqa: N815
    lastUsedAt: int | None  # noqa: N815
    expiresAt: int  # noqa: N815
    clientAddress: str | None  # noqa: N815
    userAgent: str | None  # noqa: N815


class SessionsOut(msgspec.Struct, frozen=True):
    sessions: list[SessionOut]


class UserOut(msgspec.Struct, frozen=True):
    id: int
    username: str
    email: str
    roles: list[str]
    enabled: bool


class UsersOut(msgspec.Struct, frozen=True):
    users: list[UserOut]


class AuditEntryOut(msgspec.Struct, frozen=True):
    id: int
    at: int
    actorId: int | None  # noqa: N815
    action: str
    targetUserId: int | None  # noqa: N815
    detail: str
    clientAddress: str | None  # noqa: N815


class AuditOut(msgspec.Struct, frozen=True):
    entries: list[AuditEntryOut]


class HealthOut(msgspec.Struct, frozen=True):
    status: str


class ReadyOut(msgspec.Struct, frozen=True):
    status: str
    checks: dict[str, str]


def decode(body: bytes, kind: type[T]) -> T:
    """Parse ``body`` as ``kind``; errors name the field and never echo the value."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        raise InvalidInputError(_describe(str(error))) from None
    except msgspec.DecodeError:
        raise MalformedBodyError() from None


def _describe(text: str) -> str:
    """msgspec's "Expected `str`, got `int` - at `$.username`" as a sentence for clients."""
    problem, _, where = text.partition(" - at `$")
    field = where.rstrip("`").lstrip(".")
    problem = problem.replace("`", "")
    return f"Failed! Invalid {field}: {problem}." if field else f"Failed! {problem}."


encode = msgspec.json.Encoder().encode
