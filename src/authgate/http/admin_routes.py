"""/api/admin: users, roles, sessions and the audit log, for admins only, every call audited."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate.errors import (
    AuthError,
    InvalidInputError,
    LastAdminError,
    RoleRequiredError,
    SelfLockoutError,
    SessionNotFoundError,
    UnknownRoleError,
    UserNotFoundError,
)
from authgate.http.account_routes import session_out
from authgate.http.openapi import ApiRoute, Doc
from authgate.http.routes import authenticate, client_address, json_response, read_body
from authgate.http.services import services_of
from authgate.http.wire import (
    AuditEntryOut,
    AuditOut,
    MessageOut,
    RolesBody,
    SessionsOut,
    UserOut,
    UsersOut,
)
from authgate.models import AccessClaims, Role, User
from authgate.service import require_role

Endpoint = Callable[[Request], Awaitable[Response]]


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        email=user.email,
        roles=[role.authority for role in sorted(user.roles)],
        enabled=user.enabled,
    )


def _admin(request: Request) -> AccessClaims:
    """The caller, if their token says admin: a user is refused (403) before anything of
    their request is read. The admin API checks the database again on every call."""
    claims = authenticate(request)
    require_role(claims, Role.ADMIN)
    return claims


def _int_query(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > maximum:
        raise InvalidInputError(f"Failed! {name} must be a whole number up to {maximum}.")
    return int(raw)


async def list_users(request: Request) -> Response:
    claims = _admin(request)
    found = await services_of(request).admin.users(
        claims,
        client_address(request),
        search=request.query_params.get("q", "")[:64],
        limit=_int_query(request, "limit", 50, 500),
        offset=_int_query(request, "offset", 0, 10**9),
    )
    return json_response(UsersOut([user_out(u) for u in found]))


async def read_user(request: Request) -> Response:
    claims = _admin(request)
    user = await services_of(request).admin.user(
        claims, client_address(request), request.path_params["user_id"]
    )
    return json_response(user_out(user))


async def set_roles(request: Request) -> Response:
    claims = _admin(request)
    body = await read_body(request, RolesBody)
    user = await services_of(request).admin.set_roles(
        claims, client_address(request), request.path_params["user_id"], body.roles
    )
    return json_response(user_out(user))


async def disable(request: Request) -> Response:
    claims = _admin(request)
    user = await services_of(request).admin.set_enabled(
        claims, client_address(request), request.path_params["user_id"], False
    )
    return json_response(user_out(user))


async def enable(request: Request) -> Response:
    claims = _admin(request)
    user = await services_of(request).admin.set_enabled(
        claims, client_address(request), request.path_params["user_id"], True
    )
    return json_response(user_out(user))


async def delete_user(request: Request) -> Response:
    claims = _admin(request)
    await services_of(request).admin.delete(
        claims, client_address(request), request.path_params["user_id"]
    )
    return json_response(MessageOut("User deleted."))


async def user_sessions(request: Request) -> Response:
    claims = _admin(request)
    found = await services_of(request).admin.sessions(
        claims, client_address(request), request.path_params["user_id"]
    )
    return json_response(SessionsOut([session_out(s) for s in found]))


async def revoke_user_session(request: Request) -> Response:
    claims = _admin(request)
    await services_of(request).admin.revoke_session(
        claims,
        client_address(request),
        request.path_params["user_id"],
        request.path_params["session_id"],
    )
    return json_response(MessageOut("Session revoked."))


async def audit(request: Request) -> Response:
    claims = _admin(request)
    before = request.query_params.get("before")
    entries = await services_of(request).admin.audit_log(
        claims,
        client_address(request),
        limit=_int_query(request, "limit", 100, 1000),
        before_id=_int_query(request, "before", 0, 2**62) if before is not None else None,
    )
    return json_response(
        AuditOut(
            [
                AuditEntryOut(
                    id=e.id,
                    at=e.at,
                    actor_id=e.actor_id,
                    action=e.action,
                    target_user_id=e.target_user_id,
                    detail=e.detail,
                    client_address=e.client_address,
                )
                for e in entries
            ]
        )
    )


def by_method(**handlers: Endpoint) -> Endpoint:
    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method  # Starlette adds HEAD
        return await handlers[method](request)

    return dispatch


def _admin_doc(
    summary: str,
    success: type[msgspec.Struct],
    *raises: type[AuthError],
    body: type[msgspec.Struct] | None = None,
) -> Doc:
    """Every admin call: a signed-in admin (checked again in the database), audited."""
    return Doc(
        summary,
        body,
        success,
        raises=(RoleRequiredError, *raises),
        signed_in=True,
        storage=True,
    )


class UserIdConvertor(IntegerConvertor):
    """A user id as stored: at most 18 digits, below the 64-bit columns' limit. A longer
    number names no user, so the path does not match (404) instead of reaching a database
    that would refuse it as out of range (a 500)."""

    regex = "[0-9]{1,18}"


register_url_convertor("user_id", UserIdConvertor())
_USER = "/api/admin/users/{user_id:user_id}"
_LOCKOUT = (SelfLockoutError, LastAdminError)
admin_routes: list[Route] = [
    ApiRoute(
        "/api/admin/users",
        list_users,
        GET=_admin_doc("Admins: list and search users", UsersOut, InvalidInputError),
    ),
    # One route per path, so a 405's Allow header names every method the path has.
    ApiRoute(
        _USER,
        by_method(GET=read_user, DELETE=delete_user),
        GET=_admin_doc("Admins: one user", UserOut, UserNotFoundError),
        DELETE=_admin_doc(
            "Admins: delete a user (not yourself, not the last enabled admin)",
            MessageOut,
            UserNotFoundError,
            *_LOCKOUT,
        ),
    ),
    ApiRoute(
        _USER + "/roles",
        set_roles,
        PUT=_admin_doc(
            "Admins: replace a user's roles (the last enabled admin keeps admin)",
            UserOut,
            UserNotFoundError,
            UnknownRoleError,
            LastAdminError,
            body=RolesBody,
        ),
    ),
    ApiRoute(
        _USER + "/disable",
        disable,
        POST=_admin_doc(
            "Admins: disable a user (sessions end; not yourself, not the last enabled admin)",
            UserOut,
            UserNotFoundError,
            *_LOCKOUT,
        ),
    ),
    ApiRoute(
        _USER + "/enable",
        enable,
        POST=_admin_doc("Admins: enable a user", UserOut, UserNotFoundError),
    ),
    ApiRoute(
        _USER + "/sessions",
        user_sessions,
        GET=_admin_doc("Admins: a user's live sessions", SessionsOut, UserNotFoundError),
    ),
    ApiRoute(
        _USER + "/sessions/{session_id}",
        revoke_user_session,
        DELETE=_admin_doc("Admins: revoke a user's session", MessageOut, SessionNotFoundError),
    ),
    ApiRoute(
        "/api/admin/audit",
        audit,
        GET=_admin_doc("Admins: the audit log, newest first", AuditOut, InvalidInputError),
    ),
]
