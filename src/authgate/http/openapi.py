"""The OpenAPI document, generated from the msgspec types the handlers decode and encode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from authgate import __version__
from authgate.http.wire import (
    AuditOut,
    CredentialsOut,
    DiscoveryOut,
    EmailChangeBody,
    HealthOut,
    KeySetOut,
    MessageOut,
    PasswordChangeBody,
    ReadyOut,
    ReauthenticationBody,
    RefreshBody,
    RolesBody,
    SessionsOut,
    SignedInOut,
    SignInBody,
    SignInOut,
    SignUpBody,
    TokensOut,
    UserOut,
    UsersOut,
)

_REF = "#/components/schemas/{name}"
_TOKEN_SECURITY: list[dict[str, list[str]]] = [
    {"accessToken": []},
    {"bearer": []},
    {"accessCookie": []},
]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    body: type[msgspec.Struct] | None = None
    #: One type, several (one per transport: body or cookie), or plain text.
    success: type[msgspec.Struct] | tuple[type[msgspec.Struct], ...] | str = "text/plain"
    errors: dict[int, type[msgspec.Struct]] = field(default_factory=dict)
    secured: bool = False
    cookie_transport: bool = False
    #: Path parameters and their JSON Schema types.
    path_params: tuple[tuple[str, str], ...] = ()


_POST_ERRORS: dict[int, type[msgspec.Struct]] = {
    400: MessageOut,
    408: MessageOut,
    413: MessageOut,
    415: MessageOut,
    429: MessageOut,
    503: MessageOut,
}
_TOKEN_ERRORS: dict[int, type[msgspec.Struct]] = {401: MessageOut}
_SIGNED_IN_WRITE: dict[int, type[msgspec.Struct]] = {
    **_POST_ERRORS,
    401: MessageOut,
    403: MessageOut,
}
_ADMIN: dict[int, type[msgspec.Struct]] = {
    400: MessageOut,
    401: MessageOut,
    403: MessageOut,
    404: MessageOut,
    503: MessageOut,
}
#: Changes that could remove the last enabled admin (or, in the admin API, yourself).
_LOCKOUT: dict[int, type[msgspec.Struct]] = {409: MessageOut}
_USER_ID = (("user_id", "integer"),)

ACCOUNT_OPERATIONS = [
    Operation(
        "get",
        "/api/auth/sessions",
        "My live sessions",
        success=SessionsOut,
        errors={**_TOKEN_ERRORS, 503: MessageOut},
        secured=True,
    ),
    Operation(
        "delete",
        "/api/auth/sessions/{session_id}",
        "Revoke one of my sessions",
        success=MessageOut,
        errors={**_TOKEN_ERRORS, 403: MessageOut, 404: MessageOut, 503: MessageOut},
        secured=True,
        path_params=(("session_id", "string"),),
    ),
    Operation(
        "post",
        "/api/auth/signout-all",
        "Sign out of every session (re-authentication required)",
        ReauthenticationBody,
        MessageOut,
        _SIGNED_IN_WRITE,
        secured=True,
    ),
    Operation(
        "post",
        "/api/auth/password",
        "Change my password (re-authentication required; other sessions end)",
        PasswordChangeBody,
        MessageOut,
        _SIGNED_IN_WRITE,
        secured=True,
    ),
    Operation(
        "post",
        "/api/auth/email",
        "Change my email (re-authentication required)",
        EmailChangeBody,
        MessageOut,
        _SIGNED_IN_WRITE,
        secured=True,
    ),
    Operation(
        "delete",
        "/api/auth/account",
        "Delete my account (re-authentication required; not the last enabled admin)",
        ReauthenticationBody,
        MessageOut,
        {**_SIGNED_IN_WRITE, 404: MessageOut, **_LOCKOUT},
        secured=True,
    ),
]

ADMIN_OPERATIONS = [
    Operation(
        "get",
        "/api/admin/users",
        "Admins: list and search users",
        success=UsersOut,
        errors=_ADMIN,
        secured=True,
    ),
    Operation(
        "get",
        "/api/admin/users/{user_id}",
        "Admins: one user",
        success=UserOut,
        errors=_ADMIN,
        secured=True,
        path_params=_USER_ID,
    ),
    Operation(
        "delete",
        "/api/admin/users/{user_id}",
        "Admins: delete a user (not yourself, not the last enabled admin)",
        success=MessageOut,
        errors={**_ADMIN, **_LOCKOUT},
        secured=True,
        path_params=_USER_ID,
    ),
    Operation(
        "put",
        "/api/admin/users/{user_id}/roles",
        "Admins: replace a user's roles (the last enabled admin keeps admin)",
        RolesBody,
        UserOut,
        {**_ADMIN, 408: MessageOut, 413: MessageOut, 415: MessageOut, **_LOCKOUT},
        secured=True,
        path_params=_USER_ID,
    ),
    Operation(
        "post",
        "/api/admin/users/{user_id}/disable",
        "Admins: disable a user (sessions end; not yourself, not the last enabled admin)",
        success=UserOut,
        errors={**_ADMIN, **_LOCKOUT},
        secured=True,
        path_params=_USER_ID,
    ),
    Operation(
        "post",
        "/api/admin/users/{user_id}/enable",
        "Admins: enable a user",
        success=UserOut,
        errors=_ADMIN,
        secured=True,
        path_params=_USER_ID,
    ),
    Operation(
        "get",
        "/api/admin/users/{user_id}/sessions",
        "Admins: a user's live sessions",
        success=SessionsOut,
        errors=_ADMIN,
        secured=True,
        path_params=_USER_ID,
    ),
    Operation(
        "delete",
        "/api/admin/users/{user_id}/sessions/{session_id}",
        "Admins: revoke a user's session",
        success=MessageOut,
        errors=_ADMIN,
        secured=True,
        path_params=(*_USER_ID, ("session_id", "string")),
    ),
    Operation(
        "get",
        "/api/admin/audit",
        "Admins: the audit log, newest first",
        success=AuditOut,
        errors=_ADMIN,
        secured=True,
    ),
]

OPERATIONS = [
    Operation(
        "post",
        "/api/auth/signup",
        "Create an account (roles beyond user need an admin's token)",
        SignUpBody,
        MessageOut,
        {**_POST_ERRORS, 403: MessageOut},
    ),
    Operation(
        "post",
        "/api/auth/signin",
        "Sign in: access and refresh tokens",
        SignInBody,
        (SignInOut, SignedInOut),
        {**_POST_ERRORS, 401: CredentialsOut},
        cookie_transport=True,
    ),
    Operation(
        "post",
        "/api/auth/refreshtoken",
        "Spend a refresh token for a new pair",
        RefreshBody,
        (TokensOut, MessageOut),
        {**_POST_ERRORS, 403: MessageOut},
        cookie_transport=True,
    ),
    Operation(
        "post",
        "/api/auth/signout",
        "Revoke a session: of the refresh token in the body or cookie, else of the access token",
        RefreshBody,
        MessageOut,
        # 401: `{}` with an access token that is invalid or expired (as on protected routes)
        {**_POST_ERRORS, 401: MessageOut, 403: MessageOut},
        cookie_transport=True,
    ),
    Operation("get", "/api/test/all", "Public content"),
    Operation("get", "/healthz", "The process is alive", success=HealthOut),
    Operation(
        "get",
        "/readyz",
        "The database (and Redis) answer",
        success=ReadyOut,
        errors={503: ReadyOut},
    ),
    Operation("get", "/metrics", "Prometheus metrics", errors={403: MessageOut}),
    Operation("get", "/.well-known/jwks.json", "Public signing keys (JWK Set)", success=KeySetOut),
    Operation(
        "get",
        "/.well-known/openid-configuration",
        "Issuer and key set location",
        success=DiscoveryOut,
    ),
    Operation("get", "/api/test/user", "Any signed-in user", errors=_TOKEN_ERRORS, secured=True),
    *ACCOUNT_OPERATIONS,
    *ADMIN_OPERATIONS,
    Operation(
        "get",
        "/api/test/mod",
        "Moderators",
        errors={**_TOKEN_ERRORS, 403: MessageOut},
        secured=True,
    ),
    Operation(
        "get", "/api/test/admin", "Admins", errors={**_TOKEN_ERRORS, 403: MessageOut}, secured=True
    ),
]


def _json_content(*kinds: type[msgspec.Struct]) -> dict[str, Any]:
    refs = [{"$ref": _REF.format(name=kind.__name__)} for kind in kinds]
    return {"application/json": {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}}


_TRANSPORT_HEADERS = [
    {
        "name": "X-Token-Transport",
        "in": "header",
        "required": False,
        "description": (
            "`cookie` (in any case): tokens in HttpOnly cookies instead of the body; any other "
            "value, like none, leaves them in the body."
        ),
        "schema": {"type": "string"},
    },
    {
        "name": "X-CSRF-Token",
        "in": "header",
        "required": False,
        "description": (
            "The `__Host-authgate_csrf` cookie's value (`authgate_csrf` with "
            "AUTHGATE_COOKIE_SECURE=false), when a cookie authenticates."
        ),
        "schema": {"type": "string"},
    },
]


#: What a secured operation's 401 and 403 mean; which of the two a request without any
#: token gets is AUTHGATE_MISSING_TOKEN_STATUS's choice.
_UNAUTHORIZED = (
    "`No token provided!` when no token is sent (AUTHGATE_MISSING_TOKEN_STATUS=401, the "
    "default); `Unauthorized! Access Token was expired!` for a genuine token past its "
    "expiry (refresh, then retry); `Unauthorized!` for any other token"
)
_FORBIDDEN_WITHOUT_CREDENTIALS = (
    "`No token provided!` when no token is sent and AUTHGATE_MISSING_TOKEN_STATUS=403 "
    "(the tutorial's answer)"
)


def _descriptions(op: Operation) -> dict[int, str]:
    if not op.secured:
        return {}
    forbidden = _FORBIDDEN_WITHOUT_CREDENTIALS
    if 403 in op.errors:  # also refused for its own reasons (a role, re-authentication)
        forbidden = f"Refused (see the message); or {forbidden}"
    return {401: _UNAUTHORIZED, 403: forbidden}


def _operation(op: Operation) -> dict[str, Any]:
    if isinstance(op.success, str):
        success: dict[str, Any] = {"text/plain": {"schema": {"type": "string"}}}
    elif isinstance(op.success, tuple):
        success = _json_content(*op.success)
    else:
        success = _json_content(op.success)
    responses: dict[str, Any] = {"200": {"description": "OK", "content": success}}
    descriptions = _descriptions(op)
    errors: dict[int, type[msgspec.Struct]] = dict.fromkeys(descriptions, MessageOut) | op.errors
    for status, kind in sorted(errors.items()):
        responses[str(status)] = {
            "description": descriptions.get(status, "Error"),
            "content": _json_content(kind),
        }
    spec: dict[str, Any] = {"summary": op.summary, "responses": responses}
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": _json_content(op.body)}
    if op.secured:
        spec["security"] = _TOKEN_SECURITY
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": kind}}
        for name, kind in op.path_params
    ]
    if op.cookie_transport:
        parameters.extend(_TRANSPORT_HEADERS)
    if parameters:
        spec["parameters"] = parameters
    return spec


def document() -> dict[str, Any]:
    types = sorted({t for op in OPERATIONS for t in _types(op)}, key=lambda t: t.__name__)
    _, components = msgspec.json.schema_components(types, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "authgate", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "accessToken": {"type": "apiKey", "in": "header", "name": "x-access-token"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "accessCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "__Host-authgate_access",
                    "description": (
                        "With AUTHGATE_COOKIE_TRANSPORT on and `X-Token-Transport: cookie` at "
                        "sign-in. Writes authenticated by a cookie must send `X-CSRF-Token` equal "
                        "to the `__Host-authgate_csrf` cookie, whose value is new at every "
                        "sign-in and refresh; the refresh token travels in the "
                        "`__Secure-authgate_refresh` cookie (Path=/api/auth) or in the body. "
                        "With AUTHGATE_COOKIE_SECURE=false (plain HTTP in development) the "
                        "names have no prefix."
                    ),
                },
            },
        },
    }


def _types(op: Operation) -> list[type[msgspec.Struct]]:
    found = [*op.errors.values()]
    if op.body is not None:
        found.append(op.body)
    if isinstance(op.success, tuple):
        found.extend(op.success)
    elif not isinstance(op.success, str):
        found.append(op.success)
    return found


#: Encoded once: the document never changes while the process runs.
DOCUMENT = msgspec.json.encode(document())
