"""The one table from error classes to HTTP answers, registered once on the app."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from authgate.errors import (
    AuthError,
    ConflictError,
    InvalidCredentialsError,
    InvalidInputError,
    MissingTokenError,
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
from authgate.http.wire import CredentialsOut, MessageOut, encode

JSON = "application/json; charset=utf-8"

#: Looked up along each exception's MRO, so a subclass inherits its parent's answer.
STATUS: dict[type[AuthError], int] = {
    AuthError: 400,
    InvalidInputError: 400,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    ConflictError: 400,  # the tutorial's clients expect 400 for a taken name
    InvalidCredentialsError: 401,
    TokenError: 401,
    PermissionDeniedError: 403,
    RefreshTokenError: 403,  # the tutorial's clients expect 403 from refreshtoken
    UserNotFoundError: 404,
    SessionNotFoundError: 404,
    TooManyRequestsError: 429,
    StorageUnavailableError: 503,
}


def status_of(error: AuthError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400  # pragma: no cover - AuthError itself is in the table


def error_response(error: AuthError) -> Response:
    status = status_of(error)
    body: MessageOut | CredentialsOut = MessageOut(error.message)
    headers: dict[str, str] = {}
    if isinstance(error, InvalidCredentialsError):
        body = CredentialsOut(accessToken=None, message=error.message)
    if isinstance(error, TokenError):
        # RFC 6750 §3: no error code when no token was sent.
        headers["WWW-Authenticate"] = (
            "Bearer" if isinstance(error, MissingTokenError) else 'Bearer error="invalid_token"'
        )
    if isinstance(error, StorageUnavailableError):
        headers["Retry-After"] = "1"
    if isinstance(error, TooManyRequestsError):
        headers["Retry-After"] = str(error.retry_after_seconds)
    return Response(encode(body), status_code=status, headers=headers, media_type=JSON)


async def handle_auth_error(_request: Request, error: Exception) -> Response:
    if not isinstance(error, AuthError):  # pragma: no cover - registered for AuthError only
        raise error
    return error_response(error)


async def handle_http_exception(_request: Request, error: Exception) -> Response:
    """Starlette's own 404/405 and friends, as JSON."""
    if not isinstance(error, HTTPException):  # pragma: no cover - registered for it only
        raise error
    return Response(
        encode({"message": error.detail}),
        status_code=error.status_code,
        headers=error.headers,
        media_type=JSON,
    )


async def handle_unexpected(_request: Request, _error: Exception) -> Response:
    """Last resort: never a stack trace or library text on the wire."""
    return Response(encode({"message": "Internal server error."}), status_code=500, media_type=JSON)
