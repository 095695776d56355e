"""Request and response bodies as msgspec types: the tutorial's wire names live here only.

Fields are snake_case in Python; ``rename="camel"`` gives the tutorial's names on the wire
(``refresh_token`` is ``refreshToken``). The discovery document keeps its standard
snake_case names, so it is not renamed.
"""

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


class RefreshBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    # Any: a missing or null token and a token of the wrong type get different answers.
    refresh_token: Any = None


class MessageOut(msgspec.Struct, frozen=True):
    message: str


class ErrorOut(msgspec.Struct, frozen=True):
    """An error: ``message`` for people (the tutorial's clients show it), ``code`` for
    programs: stable, one per meaning (the table is in docs/errors.md)."""

    message: str
    code: str


class SignedInOut(msgspec.Struct, frozen=True):
    """Sign-in with the cookie transport: who, and no token (they are in HttpOnly cookies)."""

    id: int
    username: str
    email: str
    roles: list[str]


class SignInOut(msgspec.Struct, rename="camel", frozen=True):
    id: int
    username: str
    email: str
    roles: list[str]
    access_token: str
    refresh_token: str


class CredentialsOut(msgspec.Struct, rename="camel", frozen=True):
    """The tutorial's failed sign-in body, ``{"accessToken": null, "message": ...}``, and
    the error's ``code``."""

    access_token: None
    message: str
    code: str


class TokensOut(msgspec.Struct, rename="camel", frozen=True):
    access_token: str
    refresh_token: str


class KeySetOut(msgspec.Struct, frozen=True):
    """RFC 7517 JWK Set: public keys only."""

    keys: list[dict[str, str]]


# OpenID Connect Discovery 1.0's own names (``jwks_uri``): never camel-cased.
class DiscoveryOut(msgspec.Struct, frozen=True):
    issuer: str
    jwks_uri: str
    id_token_signing_alg_values_supported: list[str]
    response_types_supported: list[str]
    subject_types_supported: list[str]


class ReauthenticationBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    current_password: Text | None = None


class PasswordChangeBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    new_password: Text
    current_password: Text | None = None


class EmailChangeBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    email: Text
    current_password: Text | None = None


class RolesBody(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    roles: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=8)]


class SessionOut(msgspec.Struct, rename="camel", frozen=True):
    id: str
    current: bool
    created_at: int
    last_used_at: int | None
    expires_at: int
    client_address: str | None
    user_agent: str | None


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


class AuditEntryOut(msgspec.Struct, rename="camel", frozen=True):
    id: int
    at: int
    actor_id: int | None
    action: str
    target_user_id: int | None
    detail: str
    client_address: str | None


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
