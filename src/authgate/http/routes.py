"""Route handlers: decode the body, call the service, encode the answer. Nothing else."""

from __future__ import annotations

from typing import TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate.errors import (
    AuthError,
    BodyTimeoutError,
    CsrfError,
    EmailTakenError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    InvalidTokenError,
    PasswordPolicyError,
    PayloadTooLargeError,
    RefreshTokenMissingError,
    RoleGrantDeniedError,
    TokenExpiredError,
    TooManyRequestsError,
    UnknownRoleError,
    UnsupportedMediaTypeError,
    UsernameTakenError,
)
from authgate.http import cookies
from authgate.http.caller import authenticate_scope
from authgate.http.openapi import ApiRoute, Doc, encoded
from authgate.http.options import options_of
from authgate.http.problems import JSON
from authgate.http.services import services_of
from authgate.http.wire import (
    DiscoveryOut,
    KeySetOut,
    MessageOut,
    RefreshBody,
    SignedInOut,
    SignInBody,
    SignInOut,
    SignUpBody,
    TokensOut,
    decode,
    encode,
)
from authgate.models import AccessClaims, Role
from authgate.tokens import token_from_headers

T = TypeVar("T")


def client_address(request: Request) -> str:
    """The client's address (behind trusted proxies, from X-Forwarded-For; see observe.py),
    the key of per-address rate limits."""
    found = request.scope.get("authgate.client")
    if isinstance(found, str):
        return found
    return request.client.host if request.client else ""


def authenticate(request: Request) -> AccessClaims:
    """The caller's claims: a token header, or else (browsers) the access cookie."""
    return authenticate_scope(request.scope)


async def read_body(request: Request, kind: type[T]) -> T:
    """The JSON body as ``kind``: 415 unless JSON, 413 past the cap (counted while streaming),
    408 unless it all arrives within the body timeout (a client that stalls or drips would
    otherwise hold the connection and this request open for as long as it likes)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError()
    limits = options_of(request).bodies
    limit = limits.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError()
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(limits.timeout_seconds):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError()
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeoutError() from None
    return decode(b"".join(chunks), kind)


def json_response(body: object, status_code: int = 200) -> Response:
    return Response(encode(body), status_code=status_code, media_type=JSON)


# -- /api/auth ---------------------------------------------------------------


async def sign_up(request: Request) -> Response:
    body = await read_body(request, SignUpBody)
    actor = None
    if body.roles and any(role != Role.USER for role in body.roles):
        try:
            actor = authenticate(request)
        except AuthError:
            actor = None  # a stale token on a public route is ignored; the grant check decides
    await services_of(request).auth.sign_up(
        body.username,
        body.email,
        body.password,
        body.roles,
        actor=actor,
        client=client_address(request),
    )
    return json_response(MessageOut("User registered successfully!"))


async def sign_in(request: Request) -> Response:
    body = await read_body(request, SignInBody)
    result = await services_of(request).auth.sign_in(
        body.username,
        body.password,
        client=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    user = result.user
    roles = [role.authority for role in sorted(user.roles)]
    if cookies.requested(request):
        response = json_response(
            SignedInOut(id=user.id, username=user.username, email=user.email, roles=roles)
        )
        cookies.set_tokens(response, request, result.tokens)
        return response
    return json_response(
        SignInOut(
            id=user.id,
            username=user.username,
            email=user.email,
            roles=roles,
            access_token=result.tokens.access_token,
            refresh_token=result.tokens.refresh_token,
        )
    )


def _refresh_token_of(request: Request, body: RefreshBody) -> tuple[str, bool]:
    """The refresh token from the body (as the tutorial sends it) or the refresh cookie, and
    whether it came from the cookie."""
    if body.refresh_token is None:
        from_cookie = cookies.refresh_token(request)
        if from_cookie is None:
            raise RefreshTokenMissingError()
        return from_cookie, True
    if not isinstance(body.refresh_token, str):
        raise InvalidRefreshTokenError()
    return body.refresh_token, False


async def refresh(request: Request) -> Response:
    body = await read_body(request, RefreshBody)
    token, from_cookie = _refresh_token_of(request, body)
    pair = await services_of(request).refreshes.refresh(token, client=client_address(request))
    if from_cookie or cookies.requested(request):
        response = json_response(MessageOut("Tokens refreshed."))
        cookies.set_tokens(response, request, pair)
        return response
    return json_response(
        TokensOut(access_token=pair.access_token, refresh_token=pair.refresh_token)
    )


async def sign_out(request: Request) -> Response:
    """Sign out by refresh token (the tutorial's shape, or the cookie), or else by access token."""
    body = await read_body(request, RefreshBody)
    headers = request.headers
    if (
        body.refresh_token is None
        and not cookies.refresh_cookie_sent(request)
        and token_from_headers(headers.get("x-access-token"), headers.get("authorization"))
    ):
        await services_of(request).accounts.sign_out(authenticate(request))
        return json_response(MessageOut("You've been signed out!"))
    token, from_cookie = _refresh_token_of(request, body)
    await services_of(request).refreshes.sign_out(token)
    response = json_response(MessageOut("You've been signed out!"))
    if from_cookie or cookies.requested(request):
        cookies.clear(response, request)
    return response


async def openapi(request: Request) -> Response:
    return Response(encoded(request.app.routes), media_type=JSON)


# -- published keys ----------------------------------------------------------


def _public_cache(request: Request) -> dict[str, str]:
    max_age = options_of(request).publishing.max_age_seconds
    return {"Cache-Control": f"public, max-age={max_age}"}


async def jwks(request: Request) -> Response:
    """Public keys only; cached no longer than a new key waits before it signs."""
    body = encode(KeySetOut(keys=services_of(request).key_ring.published()))
    return Response(body, media_type=JSON, headers=_public_cache(request))


async def openid_configuration(request: Request) -> Response:
    """The minimal discovery document standard JWT libraries look for.

    Its ``jwks_uri`` comes from AUTHGATE_PUBLIC_URL, so it may be cached publicly. Without
    that setting it is built from the request's Host header, which the client chose: such
    an answer is never stored (a shared cache could otherwise hand one client's Host to
    everyone) and varies by Host.
    """
    published = options_of(request).publishing
    if published.public_url:
        base, headers = published.public_url, _public_cache(request)
    else:
        base, headers = str(request.base_url), {"Vary": "Host"}  # no-store: headers.py
    body = DiscoveryOut(
        issuer=published.issuer,
        jwks_uri=f"{base.rstrip('/')}/.well-known/jwks.json",
        id_token_signing_alg_values_supported=[published.signing_algorithm],
        response_types_supported=["token"],
        subject_types_supported=["public"],
    )
    return Response(encode(body), media_type=JSON, headers=headers)


routes: list[Route] = [
    ApiRoute("/openapi.json", openapi, GET=Doc("This document", published=False)),
    ApiRoute(
        "/.well-known/jwks.json",
        jwks,
        GET=Doc("Public signing keys (JWK Set)", success=KeySetOut),
    ),
    ApiRoute(
        "/.well-known/openid-configuration",
        openid_configuration,
        GET=Doc("Issuer and key set location", success=DiscoveryOut),
    ),
    ApiRoute(
        "/api/auth/signup",
        sign_up,
        POST=Doc(
            "Create an account (roles beyond user need an admin's token)",
            SignUpBody,
            MessageOut,
            raises=(
                UsernameTakenError,
                EmailTakenError,
                UnknownRoleError,
                PasswordPolicyError,
                RoleGrantDeniedError,
                TooManyRequestsError,
            ),
            storage=True,
        ),
    ),
    ApiRoute(
        "/api/auth/signin",
        sign_in,
        POST=Doc(
            "Sign in: access and refresh tokens",
            SignInBody,
            (SignInOut, SignedInOut),
            raises=(InvalidCredentialsError, TooManyRequestsError),
            storage=True,
            cookie_transport=True,
        ),
    ),
    ApiRoute(
        "/api/auth/refreshtoken",
        refresh,
        POST=Doc(
            "Spend a refresh token for a new pair",
            RefreshBody,
            (TokensOut, MessageOut),
            raises=(
                RefreshTokenMissingError,
                InvalidRefreshTokenError,
                CsrfError,
                TooManyRequestsError,
            ),
            storage=True,
            cookie_transport=True,
        ),
    ),
    ApiRoute(
        "/api/auth/signout",
        sign_out,
        POST=Doc(
            "Revoke a session: of the refresh token in the body or cookie, else of the access "
            "token",
            RefreshBody,
            MessageOut,
            # `{}` with an access token: the protected routes' 401s, though no token is needed.
            raises=(
                RefreshTokenMissingError,
                InvalidRefreshTokenError,  # a token that is not a string
                CsrfError,
                InvalidTokenError,
                TokenExpiredError,
            ),
            storage=True,
            cookie_transport=True,
        ),
    ),
]
