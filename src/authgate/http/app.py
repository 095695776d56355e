"""The Starlette application: routes, middleware and the error table, wired once."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

from authgate.config import Settings
from authgate.errors import AuthError
from authgate.http.account_routes import account_routes
from authgate.http.admin_routes import admin_routes
from authgate.http.content import content_routes
from authgate.http.headers import ResponseHeaders
from authgate.http.observe import Observe, parse_networks
from authgate.http.operations import operations_routes
from authgate.http.options import HttpOptions
from authgate.http.problems import Problems, statuses
from authgate.http.routes import routes
from authgate.logs import AccessLog, configure_logging
from authgate.metrics import EventCounter, Metrics
from authgate.runtime import running_service
from authgate.services import Services

ROUTES = [*routes, *content_routes, *account_routes, *admin_routes, *operations_routes]


class StaticFirstRouter(Router):
    """Starlette's router, with one shortcut: a request for a path without parameters is
    found with one dict lookup instead of a regex match per route in turn (about 0.9 µs of
    CPU each; the gain is in docs/benchmarks.md). The lookup only holds what Starlette's own
    loop would have picked first (no earlier route fully matches), and only runs without a
    ``root_path``; everything else (path parameters, 404, 405, redirects, lifespan) is
    Starlette's. tests/test_app.py checks that both answer alike."""

    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=list(routes), **kwargs)
        self._static: dict[tuple[str, str], Route] = {}
        for index, route in enumerate(self.routes):
            if not isinstance(route, Route) or "{" in route.path:
                continue
            for method in route.methods or ():
                probe = {"type": "http", "path": route.path, "method": method, "root_path": ""}
                earlier = self.routes[:index]
                if all(other.matches(probe)[0] is not Match.FULL for other in earlier):
                    self._static.setdefault((route.path, method), route)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            route = self._static.get((scope["path"], scope["method"]))
            if route is not None:
                scope.setdefault("router", self)
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = dict(scope.get("path_params", ()))
                await route.app(scope, receive, send)
                return
        await super().app(scope, receive, send)


class _App(Starlette):
    """Starlette, with the error table (``Problems``) in place of its two exception
    middlewares: our middleware, then ``Problems``, then the router.

    Hence no ``exception_handlers`` or ``debug`` (they configure those two middlewares; an
    error's answer comes from ``http/problems.py``) and no ``max_body_size`` (its 413 would
    bypass the table; ``routes.read_body`` caps bodies at AUTHGATE_MAX_BODY_BYTES): they
    are not parameters, and ``add_exception_handler`` refuses.
    """

    def __init__(
        self,
        *,
        routes: Sequence[BaseRoute],
        middleware: Sequence[Middleware],
        lifespan: Lifespan[Any] | None,
        statuses: Mapping[type[AuthError], int],
        options: HttpOptions,
    ) -> None:
        super().__init__(middleware=middleware)
        self.router = StaticFirstRouter(routes, lifespan=lifespan)
        #: The error table as configured (``problems.statuses``).
        self.statuses = statuses
        #: What handlers were configured with (``options.options_of``).
        self.options = options

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = Problems(self.router, self.statuses)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return app

    def add_exception_handler(self, *_args: object, **_kwargs: object) -> None:
        raise TypeError("authgate answers errors from one table: http/problems.py")


def _starlette(settings: Settings, lifespan: Lifespan[Any] | None = None) -> Starlette:
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
        lifespan=lifespan,
        statuses=statuses(missing_token_status=settings.missing_token_status),
        options=HttpOptions.from_settings(settings),
    )
    app.state.metrics = metrics
    app.state.access_log = access_log
    return app


#: The one handler on the ``authgate`` logger that counts events, for every app in the
#: process (tests build many; a server one).
_EVENTS = EventCounter()


def _count_events(metrics: Metrics) -> None:
    """Count the events authgate logs into ``metrics`` too, for as long as it lives."""
    logger = logging.getLogger("authgate")
    if _EVENTS not in logger.handlers:
        logger.addHandler(_EVENTS)
    _EVENTS.count_into(metrics)
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
