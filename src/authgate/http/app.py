"""The Starlette application: routes, middleware and the error table, wired once."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from authgate.config import Settings
from authgate.errors import AuthError
from authgate.http.account_routes import account_routes
from authgate.http.admin_routes import admin_routes
from authgate.http.content import content_routes
from authgate.http.headers import ResponseHeaders
from authgate.http.observe import Observe, parse_networks
from authgate.http.operations import operations_routes
from authgate.http.problems import STATUS, Problems, statuses
from authgate.http.routes import routes
from authgate.logs import AccessLog, configure_logging
from authgate.metrics import EventCounter, Metrics
from authgate.runtime import running_service
from authgate.services import Services

ROUTES = [*routes, *content_routes, *account_routes, *admin_routes, *operations_routes]


class StaticFirstRouter(Router):
    """Starlette's router tries every route in turn; most requests are for a path without
    parameters, found here with one dict lookup. Everything else (path parameters, 404s,
    405s, lifespan) goes the usual way."""

    def __init__(self, routes: list[Route], **kwargs: Any) -> None:
        super().__init__(routes=list(routes), **kwargs)
        self._static = {
            (route.path, method): route
            for route in routes
            if "{" not in route.path
            for method in route.methods or ()
        }

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._static.get((scope["path"], scope["method"]))
            if route is not None:
                scope["router"] = self
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                await route.app(scope, receive, send)
                return
        await super().app(scope, receive, send)


class _App(Starlette):
    """Starlette, with the error table (``Problems``) in place of its two exception
    middlewares: our middleware, then ``Problems``, then the router."""

    #: The error table as configured (``problems.statuses``).
    statuses: Mapping[type[AuthError], int] = STATUS

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = Problems(self.router, self.statuses)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app


def _starlette(settings: Settings, lifespan: object = None) -> Starlette:
    metrics = Metrics()
    access_log = AccessLog() if settings.access_log else None
    middleware = [
        Middleware(
            Observe,
            metrics=metrics,
            trusted_proxies=parse_networks(settings.trusted_proxies),
            access_log=access_log,
            routes=ROUTES,
            headers=ResponseHeaders(hsts=settings.tls),
        ),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE"],
                allow_headers=[
                    "x-access-token",
                    "authorization",
                    "content-type",
                    "x-csrf-token",
                    "x-token-transport",
                    "x-request-id",
                ],
                allow_credentials=settings.cookie_transport,
                max_age=600,
            )
        )
    _count_events(metrics)
    app = _App(
        routes=ROUTES,
        middleware=middleware,
        lifespan=lifespan,  # type: ignore[arg-type]
    )
    app.router = StaticFirstRouter(ROUTES, lifespan=lifespan)
    app.statuses = statuses(missing_token_status=settings.missing_token_status)
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.body_timeout_seconds = settings.body_timeout_seconds
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.access_log = access_log
    return app


def _count_events(metrics: Metrics) -> None:
    """Count the events authgate logs; one counter per process (replaced, never stacked)."""
    logger = logging.getLogger("authgate")
    logger.handlers[:] = [h for h in logger.handlers if not isinstance(h, EventCounter)]
    logger.addHandler(EventCounter(metrics))
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # events are INFO records; count them at any log level


def _attach(app: Starlette, services: Services) -> None:
    app.state.services = services
    services.hasher.observe = app.state.metrics.hash_seconds.observe


def build_app(services: Services, settings: Settings) -> Starlette:
    """An app around already running services (tests, embedding)."""
    app = _starlette(settings)
    _attach(app, services)
    return app


def create_app(settings: Settings) -> Starlette:
    """An app that opens its own service on start-up and closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running_service(settings, serving=True) as services:
            _attach(app, services)
            # Everything built so far lives as long as the worker: keep it out of the
            # collector's way, so a full collection walks only what requests allocate
            # (a full pass over the start-up heap took about 90 ms; docs/benchmarks.md).
            gc.collect()
            gc.freeze()
            yield

    return _starlette(settings, lifespan)


def app_from_env() -> Starlette:
    """Factory for ASGI servers' worker processes: settings come from the environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
