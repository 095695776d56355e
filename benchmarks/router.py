"""The router against Starlette's own: CPU time per request in-process, no wrk, no server.

``http/app.StaticFirstRouter`` is kept only while it is measurably cheaper than Starlette's
``Router`` (issue 13 item 5). Two apps are built around the same services (SQLite in a
scratch directory, the access log off so nothing is written per request): authgate's as it
is, and the same app with Starlette's ``Router`` over the same routes in the same order.
Each answers GET ``/api/test/all`` (public), ``/api/test/user`` (one valid token, cached
after its first use) and ``/healthz`` (near the end of the route table), called as an ASGI
app with a fresh scope per request; the two apps take turns, in rounds, and each figure is
the median over the rounds of the process CPU time per request.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from harness import Harness
from report import Target
from starlette.applications import Starlette
from starlette.routing import Router
from starlette.types import Message, Scope

from authgate.config import Settings
from authgate.http.app import ROUTES, build_app
from authgate.runtime import build_services
from authgate.service import AuthService
from authgate.storage import Database, schema

#: Each path, and the ceiling on (static-first CPU per request) / (Starlette's).
PATHS = {"/api/test/all": 0.9, "/api/test/user": 0.9, "/healthz": 0.9}
ROUNDS, REQUESTS = 5, 3000  # requests per path, app and round
QUICK_ROUNDS, QUICK_REQUESTS = 1, 20


def target_name(path: str) -> str:
    return f"static-first router / Starlette router, CPU per request, GET {path}"


@dataclass(frozen=True)
class Figures:
    """Median CPU microseconds per request, per path: authgate's router and Starlette's."""

    ours: dict[str, float]
    theirs: dict[str, float]


def measure(harness: Harness) -> None:
    """Add one target per path to the harness's report (and the figures to its context)."""
    quick = harness.plan.quick
    rounds, requests = (QUICK_ROUNDS, QUICK_REQUESTS) if quick else (ROUNDS, REQUESTS)
    figures = asyncio.run(_measure(harness.workdir / "router", rounds, requests))
    report = harness.report
    for path, ceiling in PATHS.items():
        ours, theirs = figures.ours[path], figures.theirs[path]
        target = Target(
            target_name(path),
            ceiling,
            ours / theirs if theirs else None,
            f"{ours:.1f} / {theirs:.1f} µs CPU in-process",
            ceiling=True,
        )
        report.targets.append(target)
        print(f"  router, GET {path}: {target.detail}", flush=True)
    report.context.append(
        f"router: in-process CPU per request (no wrk, no server), median of {rounds} "
        f"alternated rounds of {requests} requests per path"
    )


def _settings(directory: Path) -> Settings:
    return Settings.from_mapping(
        {
            "data_dir": str(directory),
            "signing_key": secrets.token_urlsafe(48),
            "access_log": False,
            "argon2_memory_kib": 64,  # one sign-up and one sign-in; their cost is not measured
            "argon2_time_cost": 1,
        }
    )


async def _measure(directory: Path, rounds: int, requests: int) -> Figures:
    settings = _settings(directory)
    database = Database.connect(settings.resolved_database_url, make_directory=True)
    try:
        await schema.upgrade(database)
        services = await build_services(settings, database)
        try:
            token = await _access_token(services.auth)
            ours = build_app(services, settings)
            theirs = build_app(services, settings)
            theirs.router = Router(routes=list(ROUTES))  # before the first call builds the stack
            return await _rounds(ours, theirs, token, rounds, requests)
        finally:
            await services.aclose()
    finally:
        await database.close()


async def _access_token(auth: AuthService) -> str:
    name, password = "router-bench", secrets.token_urlsafe(16)
    await auth.sign_up(name, "router-bench@example.com", password)
    signed_in = await auth.sign_in(name, password)
    token: str = signed_in.tokens.access_token
    return token


async def _rounds(
    ours: Starlette, theirs: Starlette, token: str, rounds: int, requests: int
) -> Figures:
    apps = {"ours": ours, "theirs": theirs}
    samples: dict[tuple[str, str], list[float]] = {}
    for app in apps.values():  # warm up: the middleware stack, the token cache
        for path in PATHS:
            await _drive(app, _scope(path, token), 20)
    gc.collect()
    gc.freeze()  # as a serving worker does once it is ready
    try:
        for index in range(rounds):
            order = list(apps.items()) if index % 2 == 0 else list(reversed(apps.items()))
            for name, app in order:
                for path in PATHS:
                    seconds = await _drive(app, _scope(path, token), requests)
                    samples.setdefault((name, path), []).append(seconds / requests * 1e6)
    finally:
        gc.unfreeze()
    median = {key: statistics.median(values) for key, values in samples.items()}
    return Figures(
        ours={path: median["ours", path] for path in PATHS},
        theirs={path: median["theirs", path] for path in PATHS},
    )


def _scope(path: str, token: str) -> Scope:
    headers = [(b"host", b"router.bench"), (b"user-agent", b"router-bench")]
    if path == "/api/test/user":
        headers.append((b"x-access-token", token.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def _drive(app: Starlette, scope: Scope, requests: int) -> float:
    """Process CPU seconds for ``requests`` GETs of ``scope``; every answer must be a 200."""
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    spent = time.process_time() - started
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"{scope['path']}: answers {sorted(set(statuses))}, not only 200")
    return spent
