"""The OpenAPI document, generated from the route tables, the wire types and the error table.

Each route is an ``ApiRoute``: beside its path and handler it says, per method, what the
document says of it (``Doc``): the body and success types, whether a signed-in caller is
needed, and the error classes its handler may raise beyond the common ones. Each
operation's error statuses come from the error table (``problems.status_of``), so a route
cannot be missing from the document, nor an error from its route.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.convertors import IntegerConvertor
from starlette.routing import BaseRoute, Route

from authgate import __version__
from authgate.errors import (
    AuthError,
    BodyTimeoutError,
    CsrfError,
    InvalidInputError,
    InvalidTokenError,
    MalformedBodyError,
    MissingTokenError,
    PayloadTooLargeError,
    StorageUnavailableError,
    TokenExpiredError,
    UnsupportedMediaTypeError,
)
from authgate.http.problems import HTTP_CODES, STATUS, body_type, status_of, statuses
from authgate.http.wire import ErrorOut

Wire = type[msgspec.Struct]

#: Success as plain text (the tutorial's ``/api/test/*``, Prometheus).
TEXT = "text/plain"

#: What reading a JSON body may raise (``routes.read_body``).
BODY_ERRORS: tuple[type[AuthError], ...] = (
    InvalidInputError,
    MalformedBodyError,
    BodyTimeoutError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
#: What a signed-in route may raise before its handler runs: no token, a bad or expired
#: one (``service.authenticate``).
TOKEN_ERRORS: tuple[type[AuthError], ...] = (
    MissingTokenError,
    InvalidTokenError,
    TokenExpiredError,
)


@dataclass(frozen=True)
class Doc:
    """What the document says of one operation (one method of a route)."""

    summary: str
    body: Wire | None = None
    #: One type, several (one per transport: body or cookie), or plain text.
    success: Wire | tuple[Wire, ...] | str = TEXT
    #: Error classes the handler may raise beyond the common ones below.
    raises: tuple[type[AuthError], ...] = ()
    #: Needs an access token: the token errors, and for writes the cookie's CSRF check.
    signed_in: bool = False
    #: Reaches the database (or Redis): ``StorageUnavailableError``.
    storage: bool = False
    #: Takes ``X-Token-Transport`` (and ``X-CSRF-Token``).
    cookie_transport: bool = False
    #: False only for the document itself.
    published: bool = True


class ApiRoute(Route):
    """A Starlette route and, per method, its ``Doc``: the methods are the docs' keys."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **docs: Doc) -> None:
        super().__init__(path, endpoint, methods=list(docs))
        self.docs = docs


def errors_of(doc: Doc, method: str) -> set[type[AuthError]]:
    """Every error class an operation may answer with: its own and the common ones."""
    found = set(doc.raises)
    if doc.body is not None:
        found.update(BODY_ERRORS)
    if doc.storage:
        found.add(StorageUnavailableError)
    if doc.signed_in:
        found.update(TOKEN_ERRORS)
        if method.upper() != "GET":
            found.add(CsrfError)  # a write authenticated by the access cookie
    return found


#: The document is static while AUTHGATE_MISSING_TOKEN_STATUS is not: a request without a
#: token is documented under each status the setting allows.
_TABLES = (statuses(missing_token_status=401), statuses(missing_token_status=403))

_REF = "#/components/schemas/{name}"
_TOKEN_SECURITY: list[dict[str, list[str]]] = [
    {"accessToken": []},
    {"bearer": []},
    {"accessCookie": []},
]

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

#: What a signed-in operation's 401 and 403 mean; which of the two a request without any
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


def _error_answers(errors: Iterable[type[AuthError]]) -> dict[int, dict[Wire, set[str]]]:
    """Status -> body type -> the codes it may carry."""
    answers: dict[int, dict[Wire, set[str]]] = {}
    for kind in errors:
        for table in _TABLES:
            by_body = answers.setdefault(status_of(kind, table), {})
            by_body.setdefault(body_type(kind), set()).add(kind.code)
    return answers


def _error_content(by_body: Mapping[Wire, set[str]]) -> dict[str, Any]:
    """Each body type's schema, its ``code`` narrowed to the codes this answer may carry."""
    schemas = [
        {
            "allOf": [
                {"$ref": _REF.format(name=kind.__name__)},
                {"properties": {"code": {"enum": sorted(codes)}}},
            ]
        }
        if "code" in kind.__struct_fields__
        else {"$ref": _REF.format(name=kind.__name__)}  # /readyz's checks: no code
        for kind, codes in sorted(by_body.items(), key=lambda item: item[0].__name__)
    ]
    return {"application/json": {"schema": schemas[0] if len(schemas) == 1 else {"oneOf": schemas}}}


def _descriptions(doc: Doc, errors: set[type[AuthError]]) -> dict[int, str]:
    if not doc.signed_in:
        return {}
    forbidden = _FORBIDDEN_WITHOUT_CREDENTIALS
    if any(status_of(kind, STATUS) == 403 for kind in errors - {MissingTokenError}):
        forbidden = f"Refused (see the message); or {forbidden}"  # a role, CSRF, re-authentication
    return {401: _UNAUTHORIZED, 403: forbidden}


def _json_content(*kinds: Wire) -> dict[str, Any]:
    refs = [{"$ref": _REF.format(name=kind.__name__)} for kind in kinds]
    return {"application/json": {"schema": refs[0] if len(refs) == 1 else {"oneOf": refs}}}


def _success(doc: Doc) -> tuple[Wire, ...]:
    if isinstance(doc.success, str):
        return ()
    return doc.success if isinstance(doc.success, tuple) else (doc.success,)


def _operation(route: Route, method: str, doc: Doc) -> dict[str, Any]:
    success: dict[str, Any] = (
        _json_content(*_success(doc)) if _success(doc) else {TEXT: {"schema": {"type": "string"}}}
    )
    responses: dict[str, Any] = {"200": {"description": "OK", "content": success}}
    errors = errors_of(doc, method)
    descriptions = _descriptions(doc, errors)
    by_status = _error_answers(errors)
    if route.param_convertors:  # a value its convertor refuses: the router's own 404
        by_status.setdefault(404, {}).setdefault(ErrorOut, set()).add(HTTP_CODES[404])
    answers = {status: _error_content(by_body) for status, by_body in by_status.items()}
    for status, content in sorted(answers.items()):
        responses[str(status)] = {
            "description": descriptions.get(status, "Error"),
            "content": content,
        }
    spec: dict[str, Any] = {"summary": doc.summary, "responses": responses}
    if doc.body is not None:
        spec["requestBody"] = {"required": True, "content": _json_content(doc.body)}
    if doc.signed_in:
        spec["security"] = _TOKEN_SECURITY
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer" if isinstance(kind, IntegerConvertor) else "string"},
        }
        for name, kind in route.param_convertors.items()
    ]
    if doc.cookie_transport:
        parameters.extend(_TRANSPORT_HEADERS)
    if parameters:
        spec["parameters"] = parameters
    return spec


def operations(routes: Sequence[BaseRoute]) -> list[tuple[Route, str, Doc]]:
    """Every published (route, method, doc); a route without docs is an error."""
    found: list[tuple[Route, str, Doc]] = []
    for route in routes:
        if not isinstance(route, ApiRoute):
            raise TypeError(f"route {getattr(route, 'path', route)!r} has no OpenAPI Doc")
        found.extend(
            (route, method.lower(), doc) for method, doc in route.docs.items() if doc.published
        )
    return found


def _types(method: str, doc: Doc) -> list[Wire]:
    found = [*_success(doc)]
    found.extend(body_type(kind) for kind in errors_of(doc, method))
    if doc.body is not None:
        found.append(doc.body)
    return found


def document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    published = operations(routes)
    types = {kind for _, method, doc in published for kind in _types(method, doc)}
    _, components = msgspec.json.schema_components(
        sorted(types, key=lambda kind: kind.__name__), ref_template=_REF
    )
    paths: dict[str, dict[str, Any]] = {}
    for route, method, doc in published:
        path = route.path_format  # {user_id:user_id} -> {user_id}
        paths.setdefault(path, {})[method] = _operation(route, method, doc)
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


#: Encoded documents by the identity of the routes they describe (the app's routes never
#: change while the process runs; every app serves the same route objects).
_ENCODED: dict[tuple[int, ...], tuple[Sequence[BaseRoute], bytes]] = {}


def encoded(routes: Sequence[BaseRoute]) -> bytes:
    """The document of ``routes`` as JSON, built once."""
    key = tuple(map(id, routes))
    if key not in _ENCODED:
        _ENCODED[key] = (tuple(routes), msgspec.json.encode(document(routes)))  # keeps ids live
    return _ENCODED[key][1]
