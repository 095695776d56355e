"""The Starlette application: routes, middleware and the error table, wired once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from authgate.config import Settings
from authgate.errors import AuthError
from authgate.http.account_routes import account_routes
from authgate.http.admin_routes import admin_routes
from authgate.http.headers import SecurityHeaders
from authgate.http.problems import handle_auth_error, handle_http_exception, handle_unexpected
from authgate.http.routes import routes
from authgate.logs import configure_logging
from authgate.runtime import running_service
from authgate.service import AuthService


def _starlette(settings: Settings, lifespan: object = None) -> Starlette:
    middleware = [Middleware(SecurityHeaders)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["x-access-token", "authorization", "content-type"],
                allow_credentials=False,
                max_age=600,
            )
        )
    app = Starlette(
        routes=[*routes, *account_routes, *admin_routes],
        middleware=middleware,
        exception_handlers={
            AuthError: handle_auth_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,  # type: ignore[arg-type]
    )
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.settings = settings
    return app


def build_app(service: AuthService, settings: Settings) -> Starlette:
    """An app around an already running service (tests, embedding)."""
    app = _starlette(settings)
    app.state.service = service
    return app


def create_app(settings: Settings) -> Starlette:
    """An app that opens its own service on start-up and closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running_service(settings, poll_revocations=True) as service:
            app.state.service = service
            yield

    return _starlette(settings, lifespan)


def app_from_env() -> Starlette:
    """Factory for ASGI servers' worker processes: settings come from the environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
