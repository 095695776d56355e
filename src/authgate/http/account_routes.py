"""/api/auth/sessions, /password, /email, /account and sign-out everywhere: the caller's own."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
        createdAt=info.created_at,
        lastUsedAt=info.last_used_at,
        expiresAt=info.expires_at,
        clientAddress=info.client_address,
        userAgent=info.user_agent,
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
        claims, body.currentPassword, client=client_address(request)
    )
    return json_response(MessageOut("Signed out of every session."))


async def change_password(request: Request) -> Response:
    claims = authenticate(request)
    body = await read_body(request, PasswordChangeBody)
    await services_of(request).accounts.change_password(
        claims, body.currentPassword, body.newPassword, client=client_address(request)
    )
    return json_response(MessageOut("Password changed. Other sessions were signed out."))


async def change_email(request: Request) -> Response:
    claims = authenticate(request)
    body = await read_body(request, EmailChangeBody)
    await services_of(request).accounts.change_email(
        claims, body.currentPassword, body.email, client=client_address(request)
    )
    return json_response(MessageOut("Email changed."))


async def delete_account(request: Request) -> Response:
    claims = authenticate(request)
    body = await read_body(request, ReauthenticationBody)
    await services_of(request).accounts.delete(
        claims, body.currentPassword, client=client_address(request)
    )
    return json_response(MessageOut("Account deleted."))


account_routes = [
    Route("/api/auth/sessions", list_sessions, methods=["GET"]),
    Route("/api/auth/sessions/{session_id}", revoke_session, methods=["DELETE"]),
    Route("/api/auth/signout-all", sign_out_everywhere, methods=["POST"]),
    Route("/api/auth/password", change_password, methods=["POST"]),
    Route("/api/auth/email", change_email, methods=["POST"]),
    Route("/api/auth/account", delete_account, methods=["DELETE"]),
]
