"""The OpenAPI document, generated from the msgspec types the handlers decode and encode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from authgate import __version__
from authgate.http.wire import (
    CredentialsOut,
    DiscoveryOut,
    KeySetOut,
    MessageOut,
    RefreshBody,
    SignInBody,
    SignInOut,
    SignUpBody,
    TokensOut,
)

_REF = "#/components/schemas/{name}"
_TOKEN_SECURITY: list[dict[str, list[str]]] = [{"accessToken": []}, {"bearer": []}]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    body: type[msgspec.Struct] | None = None
    success: type[msgspec.Struct] | str = "text/plain"
    errors: dict[int, type[msgspec.Struct]] = field(default_factory=dict)
    secured: bool = False


_POST_ERRORS: dict[int, type[msgspec.Struct]] = {
    400: MessageOut,
    413: MessageOut,
    415: MessageOut,
    429: MessageOut,
    503: MessageOut,
}
_TOKEN_ERRORS: dict[int, type[msgspec.Struct]] = {401: MessageOut}

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
        SignInOut,
        {**_POST_ERRORS, 401: CredentialsOut},
    ),
    Operation(
        "post",
        "/api/auth/refreshtoken",
        "Spend a refresh token for a new pair",
        RefreshBody,
        TokensOut,
        {**_POST_ERRORS, 403: MessageOut},
    ),
    Operation(
        "post",
        "/api/auth/signout",
        "Revoke the session of a refresh token",
        RefreshBody,
        MessageOut,
        {**_POST_ERRORS, 403: MessageOut},
    ),
    Operation("get", "/api/test/all", "Public content"),
    Operation("get", "/.well-known/jwks.json", "Public signing keys (JWK Set)", success=KeySetOut),
    Operation(
        "get",
        "/.well-known/openid-configuration",
        "Issuer and key set location",
        success=DiscoveryOut,
    ),
    Operation("get", "/api/test/user", "Any signed-in user", errors=_TOKEN_ERRORS, secured=True),
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


def _json_content(kind: type[msgspec.Struct]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=kind.__name__)}}}


def _operation(op: Operation) -> dict[str, Any]:
    success: dict[str, Any] = (
        {"text/plain": {"schema": {"type": "string"}}}
        if isinstance(op.success, str)
        else _json_content(op.success)
    )
    responses: dict[str, Any] = {"200": {"description": "OK", "content": success}}
    for status, kind in sorted(op.errors.items()):
        responses[str(status)] = {"description": "Error", "content": _json_content(kind)}
    spec: dict[str, Any] = {"summary": op.summary, "responses": responses}
    if op.body is not None:
        spec["requestBody"] = {"required": True, "content": _json_content(op.body)}
    if op.secured:
        spec["security"] = _TOKEN_SECURITY
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
            },
        },
    }


def _types(op: Operation) -> list[type[msgspec.Struct]]:
    found = [*op.errors.values()]
    if op.body is not None:
        found.append(op.body)
    if not isinstance(op.success, str):
        found.append(op.success)
    return found


#: Encoded once: the document never changes while the process runs.
DOCUMENT = msgspec.json.encode(document())
