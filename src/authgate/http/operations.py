"""/healthz, /readyz and /metrics: what load balancers and Prometheus ask."""

from __future__ import annotations

import ipaddress
import secrets

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate.errors import StorageUnavailableError
from authgate.http.openapi import ApiRoute, Doc
from authgate.http.options import options_of
from authgate.http.problems import JSON
from authgate.http.routes import client_address, service_of
from authgate.http.wire import HealthOut, MessageOut, ReadyOut, encode
from authgate.metrics import CONTENT_TYPE, Metrics


async def healthz(_request: Request) -> Response:
    """The process is alive and serving."""
    return Response(encode(HealthOut("ok")), media_type=JSON)


async def readyz(request: Request) -> Response:
    """The database (and Redis, when configured) answer within a short timeout, and the
    revocation subscription (in a server with Redis) is connected."""
    probes = options_of(request).probes
    service = service_of(request)
    checks: dict[str, str] = {}
    try:
        with anyio.fail_after(probes.timeout_seconds):
            await service.database.ping()
        checks["database"] = "ok"
    except (StorageUnavailableError, TimeoutError):
        checks["database"] = "unreachable"
    if probes.redis:
        try:
            with anyio.fail_after(probes.timeout_seconds):
                await service.ready_redis()
            checks["redis"] = "ok"
        except (StorageUnavailableError, TimeoutError):
            checks["redis"] = "unreachable"
    if service.bus is not None:
        # The revocation subscription, checked by its own heartbeat: a connection can die
        # silently while the rate-limit counters still reach Redis.
        checks["redis_pubsub"] = "ok" if service.bus.connected else "unreachable"
    ready = all(value == "ok" for value in checks.values())
    body = ReadyOut("ready" if ready else "unready", checks)
    return Response(encode(body), status_code=200 if ready else 503, media_type=JSON)


async def metrics(request: Request) -> Response:
    """Prometheus text; with AUTHGATE_METRICS_TOKEN a bearer token, else loopback clients
    only (behind trusted proxies, the forwarded client, not the proxy)."""
    if not _may_scrape(request, options_of(request).probes.metrics_token):
        forbidden = MessageOut("Metrics need AUTHGATE_METRICS_TOKEN, or a loopback client.")
        return Response(encode(forbidden), status_code=403, media_type=JSON)
    service = service_of(request)
    extra = {"authgate_revoked_sessions_in_memory": float(len(service.revoked))}
    try:
        with anyio.fail_after(2):
            extra["authgate_active_sessions"] = float(await service.live_sessions())
    except (StorageUnavailableError, TimeoutError):
        pass  # the gauge is missing rather than wrong
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(extra), media_type=CONTENT_TYPE)


def _may_scrape(request: Request, metrics_token: str | None) -> bool:
    if metrics_token is not None:
        offered = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return secrets.compare_digest(offered.encode(), metrics_token.encode())
    # The client as resolved behind trusted proxies: a proxy on this host is a loopback
    # peer, but the client it forwards is not.
    try:
        return ipaddress.ip_address(client_address(request)).is_loopback
    except ValueError:
        return False


operations_routes: list[Route] = [
    ApiRoute("/healthz", healthz, GET=Doc("The process is alive", success=HealthOut)),
    ApiRoute(
        "/readyz",
        readyz,
        GET=Doc("The database (and Redis) answer", success=ReadyOut, answers={503: ReadyOut}),
    ),
    ApiRoute("/metrics", metrics, GET=Doc("Prometheus metrics", answers={403: MessageOut})),
]
