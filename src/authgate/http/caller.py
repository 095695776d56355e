"""Who is calling: the access token from a header or (browsers) the cookie, verified.

Works on the ASGI scope, so that the hot routes need no ``Request``; the others call it
through ``routes.authenticate``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Scope

from authgate.http import cookies
from authgate.http.services import services_of
from authgate.models import AccessClaims
from authgate.tokens import token_from_headers


def authenticate_scope(scope: Scope) -> AccessClaims:
    """The caller's claims: a token header (the first of each name), or else (browsers)
    the access cookie."""
    legacy = authorization = None
    for name, value in scope["headers"]:
        if name == b"x-access-token":
            legacy = value.decode("latin-1") if legacy is None else legacy
        elif name == b"authorization":
            authorization = value.decode("latin-1") if authorization is None else authorization
    token = token_from_headers(legacy, authorization)
    return services_of(scope).auth.authenticate(token or cookies.access_token(Request(scope)))
