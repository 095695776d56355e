"""The app as wired: a router that answers as Starlette's does, Starlette options it refuses,
and one event counter per process."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp

from authgate.config import Settings
from authgate.http.app import ROUTES, StaticFirstRouter, build_app
from authgate.metrics import EventCounter
from authgate.services import Services

pytestmark = pytest.mark.anyio

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")


async def echo(request: Request) -> Response:
    """Which route answered, and with which parameters."""
    route = request.scope["route"]
    return PlainTextResponse(f"{id(route)} {route.path} {sorted(request.path_params.items())}")


def mirrored(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """authgate's route table, every endpoint replaced by ``echo``."""
    return [
        Route(r.path, echo, methods=list(r.methods or ())) for r in routes if isinstance(r, Route)
    ]


def tricky() -> list[BaseRoute]:
    """Cases where the first match in order must win over a static path's lookup."""
    mounted: ASGIApp = PlainTextResponse("mounted")
    return [
        Route("/shadowed/{name}", echo, methods=["GET"]),  # matches the next path first
        Route("/shadowed/exact", echo, methods=["GET", "POST"]),  # so only POST is its own
        Route("/twice", echo, methods=["GET"]),
        Route("/twice", echo, methods=["GET", "DELETE"]),  # GET: the first one
        Mount("/mounted", app=mounted),
        Route("/mounted/inner", echo, methods=["GET"]),  # the mount takes it
        Route("/any", PlainTextResponse("any")),  # an ASGI app: every method
    ]


def requests_for(routes: Sequence[BaseRoute]) -> list[tuple[str, str, str]]:
    """(method, path, root_path): every route's path under every method, with a value for
    each parameter, with and without a trailing slash, and some paths no route has."""
    paths = {"/", "/nowhere", "/api/test", "/api/test/all/extra"}
    for route in routes:
        path = getattr(route, "path", "")
        filled = path.replace("{session_id}", "s-1").replace("{user_id}", "42")
        filled = filled.replace("{name}", "n").replace("{id}", "7")
        paths |= {filled, filled + "/", filled.rstrip("/") or "/"}
    cases = [(method, path, "") for path in sorted(paths) for method in METHODS]
    # Behind a proxy that strips a prefix, Starlette routes the path without it.
    cases += [("GET", "/auth/api/test/all", "/auth"), ("GET", "/api/test/all", "/api")]
    return cases


async def answers(router: Router, method: str, path: str, root_path: str) -> tuple[object, ...]:
    transport = httpx.ASGITransport(app=router, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://authgate.test") as client:
        response = await client.request(method, path)
    return (
        response.status_code,
        response.headers.get("allow"),
        response.headers.get("location"),
        response.text,
    )


@pytest.mark.parametrize("table", ["authgate", "tricky"])
async def test_the_router_answers_every_request_as_starlettes_does(table: str) -> None:
    routes = mirrored(ROUTES) if table == "authgate" else tricky()
    ours, theirs = StaticFirstRouter(routes), Router(routes)
    for method, path, root_path in requests_for(routes):
        expected = await answers(theirs, method, path, root_path)
        assert await answers(ours, method, path, root_path) == expected, (method, path, root_path)


async def test_the_router_takes_the_shortcut_for_static_paths() -> None:
    """Not a timing: the lookup holds authgate's static routes (else it would never help)."""
    router = StaticFirstRouter(mirrored(ROUTES))
    static = {
        (r.path, m)
        for r in router.routes
        if isinstance(r, Route) and "{" not in r.path
        for m in r.methods or ()
    }
    assert set(router._static) == static
    assert ("/api/test/all", "HEAD") in static


async def test_starlettes_error_options_are_refused(services: Services, settings: Settings) -> None:
    """Starlette's exception_handlers, debug and max_body_size would be ignored here (the
    error table and read_body do their jobs), so they cannot be passed."""
    app = build_app(services, settings)
    with pytest.raises(TypeError, match=r"problems\.py"):
        app.add_exception_handler(ValueError, lambda _request, _error: Response())
    refused: list[dict[str, Any]] = [
        {"debug": True},
        {"exception_handlers": {}},
        {"max_body_size": 1024},
    ]
    ours: Any = app  # the app's own class, with its error table and options
    wiring = {"routes": ROUTES, "middleware": [], "lifespan": None}
    wiring |= {"statuses": ours.statuses, "options": ours.options}
    type(ours)(**wiring)
    for option in refused:
        with pytest.raises(TypeError, match=next(iter(option))):
            type(ours)(**wiring, **option)


async def test_every_app_counts_events_through_one_handler(
    services: Services, settings: Settings
) -> None:
    apps = [build_app(services, settings) for _ in range(3)]
    counters = [h for h in logging.getLogger("authgate").handlers if isinstance(h, EventCounter)]
    assert len(counters) == 1
    logging.getLogger("authgate.test").info("counted", extra={"event": "test.counted"})
    for app in apps:  # the first app built still counts
        assert (
            'authgate_events_total{event="test.counted"} 1.0' in app.state.metrics.render().decode()
        )
