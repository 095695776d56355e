"""The tutorial's content routes, ``/api/test/*``: a fixed text behind an optional role.

They are what a protected request costs, so they are bare ASGI apps: no ``Request`` or
``Response`` object, one pass over the headers, answers built once. Errors are raised as
everywhere else and answered by the app's error table.
"""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from authgate.errors import RoleRequiredError
from authgate.http.caller import authenticate_scope
from authgate.http.openapi import ApiRoute, Doc
from authgate.models import Role
from authgate.service import require_role


class Content:
    """``GET`` answers ``text``, to anyone or to a signed-in user holding ``role``."""

    def __init__(self, text: str, *, signed_in: bool, role: Role | None = None) -> None:
        body = text.encode()
        self._headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"text/plain; charset=utf-8"),
        ]
        self._body = {"type": "http.response.body", "body": body}
        self._signed_in = signed_in
        self._role = role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._signed_in:
            claims = authenticate_scope(scope)
            if self._role is not None:
                require_role(claims, self._role)
        # Fresh dicts and lists: middleware may replace the headers of what it is sent.
        await send({"type": "http.response.start", "status": 200, "headers": list(self._headers)})
        await send(dict(self._body))


content_routes: list[Route] = [
    ApiRoute(
        "/api/test/all",
        Content("Public Content.", signed_in=False),
        GET=Doc("Public content"),
    ),
    ApiRoute(
        "/api/test/user",
        Content("User Content.", signed_in=True),
        GET=Doc("Any signed-in user", signed_in=True),
    ),
    ApiRoute(
        "/api/test/mod",
        Content("Moderator Content.", signed_in=True, role=Role.MODERATOR),
        GET=Doc("Moderators", raises=(RoleRequiredError,), signed_in=True),
    ),
    ApiRoute(
        "/api/test/admin",
        Content("Admin Content.", signed_in=True, role=Role.ADMIN),
        GET=Doc("Admins", raises=(RoleRequiredError,), signed_in=True),
    ),
]
