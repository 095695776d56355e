"""The browser transport: tokens in HttpOnly cookies, with a double-submit CSRF token.

A client opts in per request with ``X-Token-Transport: cookie`` (when
``AUTHGATE_COOKIE_TRANSPORT`` is on). Sign-in and refresh then set:

- ``__Host-authgate_access``: the access token; HttpOnly, ``Path=/``;
- ``__Secure-authgate_refresh``: the refresh token; HttpOnly, ``SameSite=Strict``, and only
  sent to ``/api/auth`` (where refresh and sign-out live);
- ``__Host-authgate_csrf``: a random value the page can read and must echo in
  ``X-CSRF-Token`` on every state-changing request that a cookie authenticates. It is new
  at every sign-in and refresh, so a value planted before sign-in is never kept.

The prefixes make browsers refuse these names unless the cookie is ``Secure`` (and, for
``__Host-``, has ``Path=/`` and no ``Domain``), so neither a sibling subdomain nor a plain
HTTP page can plant or overwrite them. The refresh cookie's narrower path rules out
``__Host-``. With ``AUTHGATE_COOKIE_SECURE=false`` (plain HTTP in development) browsers
would refuse prefixed cookies, so the plain names are used; only one set of names is ever
read.

The answers then carry no token in their bodies, so script on the page never sees one.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from authgate.errors import CsrfError
from authgate.http.options import CookieOptions, options_of
from authgate.models import TokenPair

ACCESS = "authgate_access"
REFRESH = "authgate_refresh"
CSRF = "authgate_csrf"
CSRF_HEADER = "x-csrf-token"
TRANSPORT_HEADER = "x-token-transport"
REFRESH_PATH = "/api/auth"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str


SECURE_NAMES = CookieNames("__Host-" + ACCESS, "__Secure-" + REFRESH, "__Host-" + CSRF)
PLAIN_NAMES = CookieNames(ACCESS, REFRESH, CSRF)


def names(options: CookieOptions) -> CookieNames:
    """The prefixed names for Secure cookies, the plain ones otherwise."""
    return SECURE_NAMES if options.secure else PLAIN_NAMES


def _options(request: Request) -> CookieOptions:
    return options_of(request).cookies


def enabled(request: Request) -> bool:
    return _options(request).enabled


def requested(request: Request) -> bool:
    """The client asked for cookies (and the server offers them)."""
    return enabled(request) and request.headers.get(TRANSPORT_HEADER, "").lower() == "cookie"


def check_csrf(request: Request) -> None:
    """Writes authenticated by a cookie must echo the CSRF cookie in a header."""
    if request.method in _SAFE_METHODS:
        return
    cookie = request.cookies.get(names(_options(request)).csrf, "")
    header = request.headers.get(CSRF_HEADER, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), header.encode()):
        raise CsrfError()


def access_token(request: Request) -> str | None:
    """The access cookie, CSRF-checked for writes; None without cookie transport."""
    if not enabled(request):
        return None
    token = request.cookies.get(names(_options(request)).access)
    if token:
        check_csrf(request)
    return token


def refresh_token(request: Request) -> str | None:
    """The refresh cookie, CSRF-checked; None without cookie transport."""
    if not enabled(request):
        return None
    token = request.cookies.get(names(_options(request)).refresh)
    if token:
        check_csrf(request)
    return token


def refresh_cookie_sent(request: Request) -> bool:
    return enabled(request) and names(_options(request)).refresh in request.cookies


def set_tokens(response: Response, request: Request, tokens: TokenPair) -> None:
    """The three cookies; the CSRF value is always a new one (never one the browser sent,
    which someone else may have planted)."""
    options = _options(request)
    secure = options.secure
    named = names(options)
    response.set_cookie(
        named.access,
        tokens.access_token,
        max_age=options.access_max_age_seconds,
        path="/",
        samesite=options.samesite,
        secure=secure,
        httponly=True,
    )
    response.set_cookie(
        named.refresh,
        tokens.refresh_token,
        max_age=options.refresh_max_age_seconds,
        path=REFRESH_PATH,
        samesite="strict",
        secure=secure,
        httponly=True,
    )
    response.set_cookie(
        named.csrf,
        secrets.token_urlsafe(32),
        max_age=options.refresh_max_age_seconds,
        path="/",
        samesite="strict",
        secure=secure,
        httponly=False,  # the page reads it to echo it
    )


def clear(response: Response, request: Request) -> None:
    """Expire the three cookies (with the attributes they were set with: browsers ignore a
    prefixed cookie's deletion unless it is Secure too)."""
    options = _options(request)
    named = names(options)
    secure = options.secure
    response.delete_cookie(named.access, path="/", secure=secure, httponly=True)
    response.delete_cookie(
        named.refresh, path=REFRESH_PATH, secure=secure, httponly=True, samesite="strict"
    )
    response.delete_cookie(named.csrf, path="/", secure=secure, samesite="strict")
