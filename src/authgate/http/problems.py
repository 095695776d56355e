"""The one table from error classes to HTTP answers, and the middleware that applies it."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.errors import (
    AdminLockoutError,
    AuthError,
    BodyTimeoutError,
    ConflictError,
    InvalidCredentialsError,
    InvalidInputError,
    MissingTokenError,
    NotReadyError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RefreshTokenError,
    SessionNotFoundError,
    StorageUnavailableError,
    TokenError,
    TooManyRequestsError,
    UnsupportedMediaTypeError,
    UserNotFoundError,
)
from authgate.http.wire import CredentialsOut, ErrorOut, ReadyOut, encode

JSON = "application/json; charset=utf-8"

#: Looked up along each exception's MRO, so a subclass inherits its parent's answer.
STATUS: dict[type[AuthError], int] = {
    AuthError: 400,
    InvalidInputError: 400,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    BodyTimeoutError: 408,
    ConflictError: 400,  # the tutorial's clients expect 400 for a taken name
    AdminLockoutError: 409,  # not the tutorial's: the account's state forbids the change
    InvalidCredentialsError: 401,
    TokenError: 401,
    PermissionDeniedError: 403,
    RefreshTokenError: 403,  # the tutorial's clients expect 403 from refreshtoken
    UserNotFoundError: 404,
    SessionNotFoundError: 404,
    TooManyRequestsError: 429,
    StorageUnavailableError: 503,
    NotReadyError: 503,  # no Retry-After: a load balancer polls /readyz on its own schedule
}


def statuses(*, missing_token_status: int = 401) -> dict[type[AuthError], int]:
    """The table as configured: ``AUTHGATE_MISSING_TOKEN_STATUS`` answers a request that
    carries no token at all (401, or the tutorial's 403); a bad or expired token stays 401,
    which the clients' interceptors refresh on."""
    return {**STATUS, MissingTokenError: missing_token_status}


def status_of(
    error: AuthError | type[AuthError], table: Mapping[type[AuthError], int] = STATUS
) -> int:
    """The status of an error, or of every error of a class (the OpenAPI document's use)."""
    kind = error if isinstance(error, type) else type(error)
    for cls in kind.__mro__:
        if cls in table:
            return table[cls]
    return 400  # pragma: no cover - AuthError itself is in the table


def body_type(kind: type[AuthError]) -> type[ErrorOut] | type[CredentialsOut] | type[ReadyOut]:
    """The wire type of the answer to ``kind``: the tutorial's sign-in failure keeps its
    ``accessToken: null``; ``/readyz`` answers unready with the same body as ready."""
    if issubclass(kind, NotReadyError):
        return ReadyOut
    return CredentialsOut if issubclass(kind, InvalidCredentialsError) else ErrorOut


def error_response(error: AuthError, table: Mapping[type[AuthError], int] = STATUS) -> Response:
    status = status_of(error, table)
    body: ErrorOut | CredentialsOut | ReadyOut = ErrorOut(error.message, error.code)
    headers: dict[str, str] = {}
    if body_type(type(error)) is CredentialsOut:
        body = CredentialsOut(access_token=None, message=error.message, code=error.code)
    if isinstance(error, NotReadyError):
        body = ReadyOut("unready", error.checks)
    if isinstance(error, TokenError):
        # RFC 6750 §3: no error code when no token was sent. RFC 9110 §11.6.1 allows the
        # challenge on a 403 too (AUTHGATE_MISSING_TOKEN_STATUS=403): a token would help.
        headers["WWW-Authenticate"] = (
            "Bearer" if isinstance(error, MissingTokenError) else 'Bearer error="invalid_token"'
        )
    if isinstance(error, StorageUnavailableError):
        headers["Retry-After"] = "1"
    if isinstance(error, TooManyRequestsError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, BodyTimeoutError):
        headers["Connection"] = "close"  # the rest of the body may still come; don't read it
    return Response(encode(body), status_code=status, headers=headers, media_type=JSON)


#: Codes of the answers that come from Starlette or from no error class (docs/errors.md).
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
HTTP_CODE = "http_error"
INTERNAL_CODE = "internal_error"


def http_error_response(error: HTTPException) -> Response:
    """Starlette's own 404/405 and friends, as JSON."""
    code = HTTP_CODES.get(error.status_code, HTTP_CODE)
    return Response(
        encode(ErrorOut(error.detail, code)),
        status_code=error.status_code,
        headers=error.headers,
        media_type=JSON,
    )


def unexpected_response() -> Response:
    """Last resort: never a stack trace or library text on the wire."""
    body = encode(ErrorOut("Internal server error.", INTERNAL_CODE))
    return Response(body, status_code=500, media_type=JSON)


class Problems:
    """The table above as middleware, innermost: what a route raises becomes its answer.

    It stands in for Starlette's two exception middlewares, which build a ``Request`` and
    wrap ``send`` twice on every request, errors or not (docs/benchmarks.md). Like them, it
    answers an unexpected error with a bare 500 and raises it again for the server to log,
    and it cannot answer once a response has started.
    """

    def __init__(self, app: ASGIApp, table: Mapping[type[AuthError], int] = STATUS) -> None:
        self.app = app
        self._table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as error:
            if started:
                raise
            if isinstance(error, AuthError):
                await error_response(error, self._table)(scope, receive, send)
            elif isinstance(error, HTTPException):
                await http_error_response(error)(scope, receive, send)
            else:
                await unexpected_response()(scope, receive, send)
                raise
