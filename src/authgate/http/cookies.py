"""The browser transport: tokens in HttpOnly cookies, with a double-submit CSRF token.

A client opts in per request with ``X-Token-Transport: cookie`` (when
``AUTHGATE_COOKIE_TRANSPORT`` is on). Sign-in and refresh then set:

- ``authgate_access``: the access token; HttpOnly, ``Path=/``;
- ``authgate_refresh``: the refresh token; HttpOnly, ``SameSite=Strict``, and only sent to
  ``/api/auth`` (where refresh and sign-out live);
- ``authgate_csrf``: a random value the page can read and must echo in ``X-CSRF-Token`` on
  every state-changing request that a cookie authenticates.

The answers then carry no token in their bodies, so script on the page never sees one.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

from authgate.config import Settings
from authgate.errors import CsrfError
from authgate.models import TokenPair

ACCESS = "authgate_access"
REFRESH = "authgate_refresh"
CSRF = "authgate_csrf"
CSRF_HEADER = "x-csrf-token"
TRANSPORT_HEADER = "x-token-transport"
REFRESH_PATH = "/api/auth"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def enabled(request: Request) -> bool:
    return _settings(request).cookie_transport


def requested(request: Request) -> bool:
    """The client asked for cookies (and the server offers them)."""
    return enabled(request) and request.headers.get(TRANSPORT_HEADER, "").lower() == "cookie"


def check_csrf(request: Request) -> None:
    """Writes authenticated by a cookie must echo the CSRF cookie in a header."""
    if request.method in _SAFE_METHODS:
        return
    cookie = request.cookies.get(CSRF, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise CsrfError()


def access_token(request: Request) -> str | None:
    """The access cookie, CSRF-checked for writes; None without cookie transport."""
    if not enabled(request):
        return None
    token = request.cookies.get(ACCESS)
    if token:
        check_csrf(request)
    return token


def refresh_token(request: Request) -> str | None:
    if not enabled(request):
        return None
    token = request.cookies.get(REFRESH)
    if token:
        check_csrf(request)
    return token


def set_tokens(response: Response, request: Request, tokens: TokenPair) -> None:
    settings = _settings(request)
    secure = settings.cookie_secure
    response.set_cookie(
        ACCESS,
        tokens.access_token,
        max_age=settings.access_token_ttl_seconds,
        path="/",
        samesite=settings.cookie_samesite,
        secure=secure,
        httponly=True,
    )
    response.set_cookie(
        REFRESH,
        tokens.refresh_token,
        max_age=settings.refresh_token_ttl_seconds,
        path=REFRESH_PATH,
        samesite="strict",
        secure=secure,
        httponly=True,
    )
    response.set_cookie(
        CSRF,
        request.cookies.get(CSRF) or secrets.token_urlsafe(32),
        max_age=settings.refresh_token_ttl_seconds,
        path="/",
        samesite="strict",
        secure=secure,
        httponly=False,  # the page reads it to echo it
    )


def clear(response: Response) -> None:
    response.delete_cookie(ACCESS, path="/")
    response.delete_cookie(REFRESH, path=REFRESH_PATH)
    response.delete_cookie(CSRF, path="/")
