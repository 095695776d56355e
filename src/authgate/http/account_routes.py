"""/api/auth/sessions, /password, /email, /account and sign-out everywhere: the caller's own."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate.errors import (
    EmailTakenError,
    LastAdminError,
    PasswordPolicyError,
    ReauthenticationRequiredError,
    SessionNotFoundError,
    TooManyRequestsError,
    UserNotFoundError,
)
from authgate.http.openapi import ApiRoute, Doc
from authgate.http.routes import authenticate, client_address, json_response, read_body
from authgate.http.services import services_of
from authgate.http.wire import (
    EmailChangeBody,
    MessageOut,
    PasswordChangeBody,
    ReauthenticationBody,
    SessionOut,
    SessionsOut,
)
from authgate.models import SessionInfo


def session_out(info: SessionInfo, current: str | None = None) -> SessionOut:
    return SessionOut(
        id=info.id,
        current=info.id == current,
        created_at=info.created_at,
        last_used_at=info.last_used_at,
        expires_at=info.expires_at,
        client_address=info.client_address,
        user_agent=info.user_agent,
    )


async def list_sessions(request: Request) -> Response:
    claims = authenticate(request)
    found = await services_of(request).accounts.sessions(claims)
    return json_response(SessionsOut([session_out(s, claims.session_id) for s in found]))


async def revoke_session(request: Request) -> Response:
    claims = authenticate(request)
    await services_of(request).accounts.revoke_session(claims, request.path_params["session_id"])
    return json_response(MessageOut("Session revoked."))


async def sign_out_everywhere(request: Request) -> Response:
    claims = authenticate(request)
    body = await read_body(request, ReauthenticationBody)
    await services_of(request).accounts.sign_out_everywhere(
        claims, body.current_password, client=client_address(request)
    )
    return json_response(MessageOut("Signed out of every session."))


async def change_password(request: Request) -> Response:
    claims = authenticate(request)
    body = await read_body(request, PasswordChangeBody)
    await services_of(request).accounts.change_password(
        claims, body.current_password, body.new_password, client=client_address(request)
    )
    return json_response(MessageOut("Password changed. Other sessions were signed out."))


async def change_email(request: Request) -> Response:
    claims = authenticate(request)
    body = await read_body(request, EmailChangeBody)
    await services_of(request).accounts.change_email(
        claims, body.current_password, body.email, client=client_address(request)
    )
    return json_response(MessageOut("Email changed."))


async def delete_account(request: Request) -> Response:
    claims = authenticate(request)
    body = await read_body(request, ReauthenticationBody)
    await services_of(request).accounts.delete(
        claims, body.current_password, client=client_address(request)
    )
    return json_response(MessageOut("Account deleted."))


#: What proving the password again may raise (``accounts._reauthenticate``): the account
#: is gone or disabled, the proof is missing or wrong, too many tries.
_REAUTHENTICATION = (UserNotFoundError, ReauthenticationRequiredError, TooManyRequestsError)

account_routes: list[Route] = [
    ApiRoute(
        "/api/auth/sessions",
        list_sessions,
        GET=Doc("My live sessions", success=SessionsOut, signed_in=True, storage=True),
    ),
    ApiRoute(
        "/api/auth/sessions/{session_id}",
        revoke_session,
        DELETE=Doc(
            "Revoke one of my sessions",
            success=MessageOut,
            raises=(SessionNotFoundError,),
            signed_in=True,
            storage=True,
        ),
    ),
    ApiRoute(
        "/api/auth/signout-all",
        sign_out_everywhere,
        POST=Doc(
            "Sign out of every session (re-authentication required)",
            ReauthenticationBody,
            MessageOut,
            raises=_REAUTHENTICATION,
            signed_in=True,
            storage=True,
        ),
    ),
    ApiRoute(
        "/api/auth/password",
        change_password,
        POST=Doc(
            "Change my password (re-authentication required; other sessions end)",
            PasswordChangeBody,
            MessageOut,
            raises=(*_REAUTHENTICATION, PasswordPolicyError),
            signed_in=True,
            storage=True,
        ),
    ),
    ApiRoute(
        "/api/auth/email",
        change_email,
        POST=Doc(
            "Change my email (re-authentication required)",
            EmailChangeBody,
            MessageOut,
            raises=(*_REAUTHENTICATION, EmailTakenError),
            signed_in=True,
            storage=True,
        ),
    ),
    ApiRoute(
        "/api/auth/account",
        delete_account,
        DELETE=Doc(
            "Delete my account (re-authentication required; not the last enabled admin)",
            ReauthenticationBody,
            MessageOut,
            raises=(*_REAUTHENTICATION, LastAdminError),
            signed_in=True,
            storage=True,
        ),
    ),
]
