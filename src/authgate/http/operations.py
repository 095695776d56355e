"""/healthz, /readyz and /metrics: what load balancers and Prometheus ask."""

from __future__ import annotations

import ipaddress
import secrets

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from authgate.errors import MetricsForbiddenError, NotReadyError
from authgate.http.openapi import ApiRoute, Doc
from authgate.http.options import options_of
from authgate.http.problems import JSON
from authgate.http.routes import client_address
from authgate.http.services import services_of
from authgate.http.wire import HealthOut, ReadyOut, encode
from authgate.metrics import CONTENT_TYPE, Metrics


async def healthz(_request: Request) -> Response:
    """The process is alive and serving."""
    return Response(encode(HealthOut("ok")), media_type=JSON)


async def readyz(request: Request) -> Response:
    """The database (and Redis, when configured) answer within a short timeout, and the
    revocation subscription (in a server with Redis) is connected; else 503, naming each."""
    checks = await services_of(request).upkeep.ready()
    return Response(encode(ReadyOut("ready", checks)), media_type=JSON)


async def metrics(request: Request) -> Response:
    """Prometheus text; with AUTHGATE_METRICS_TOKEN a bearer token, else loopback clients
    only (behind trusted proxies, the forwarded client, not the proxy)."""
    if not _may_scrape(request, options_of(request).probes.metrics_token):
        raise MetricsForbiddenError()
    gauges = await services_of(request).upkeep.gauges()
    registry: Metrics = request.app.state.metrics
    return Response(registry.render(gauges), media_type=CONTENT_TYPE)


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
        GET=Doc("The database (and Redis) answer", success=ReadyOut, raises=(NotReadyError,)),
    ),
    ApiRoute("/metrics", metrics, GET=Doc("Prometheus metrics", raises=(MetricsForbiddenError,))),
]
