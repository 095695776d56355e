"""One ASGI middleware for what every request gets at the edge: a request id, the client
address behind trusted proxies, the response headers (``headers.py``), one JSON log record
and the HTTP metrics. One middleware, so one ``send`` wrapper per request."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import secrets
import time
from collections.abc import Iterable, Sequence

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.http.headers import ResponseHeaders
from authgate.logs import AccessLog
from authgate.metrics import Metrics

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
#: How stale the access log and this worker's request metrics may be.
FLUSH_SECONDS = 0.25
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def client_address(peer: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The peer, or, when the peer is a trusted proxy, the nearest untrusted address in
    ``X-Forwarded-For`` (read right to left: only trusted hops can have added entries)."""
    if not trusted or not _trusted(peer, trusted) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class Observe:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        trusted_proxies: list[Network],
        access_log: AccessLog | None,
        routes: Sequence[Route],
        headers: ResponseHeaders,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.app = app
        self._flush_seconds = flush_seconds
        self._headers = headers
        self._routes = routes
        # Labels name the template without its convertors: /api/admin/users/{user_id}.
        self._templates: dict[object, str] = {r.endpoint: r.path_format for r in routes}
        self._access = access_log
        self._metrics = metrics
        self._trusted = trusted_proxies
        self._flush_due = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:
                if scope["type"] == "lifespan":  # shutting down: nothing may stay queued
                    self.flush()
            return
        started = time.perf_counter()
        offered = forwarded = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                offered = value
            elif name == b"x-forwarded-for":
                forwarded = value
        if offered is not None and _REQUEST_ID.fullmatch(offered):
            request_id = offered.decode("ascii")
        else:
            request_id = self._new_request_id()
        peer = scope["client"][0] if scope.get("client") else ""
        scope["authgate.client"] = (
            client_address(peer, forwarded.decode("latin-1") if forwarded else None, self._trusted)
            if self._trusted
            else peer
        )
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = self._headers.apply(
                    message.get("headers", ()), request_id.encode()
                )
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            elapsed = time.perf_counter() - started
            # The route's template, never the raw path: ids would explode the label set.
            method = scope["method"]
            route = self._templates.get(scope.get("endpoint")) or (
                self._preflighted(scope) if method == "OPTIONS" else "unmatched"
            )
            self._metrics.record_request(route, method, status, elapsed)
            if self._access is not None:
                self._access.write(
                    method, route, status, elapsed * 1000, request_id, scope["authgate.client"]
                )
            if not self._flush_due:
                self._flush_due = True
                asyncio.get_running_loop().call_later(self._flush_seconds, self.flush)

    def _preflighted(self, scope: Scope) -> str:
        """The route a CORS preflight asks about: the CORS middleware answers it before
        routing, so no endpoint is set (its method is OPTIONS, which no route declares)."""
        for route in self._routes:
            if route.matches(scope)[0] is not Match.NONE:
                return route.path_format
        return "unmatched"

    def flush(self) -> None:
        """Write the queued access lines and add the tallied requests to the metrics."""
        self._flush_due = False
        self._metrics.flush()
        if self._access is not None:
            self._access.flush()

    @staticmethod
    def _new_request_id() -> str:
        # 128 random bits: an id says nothing about how many requests came before it, and
        # cannot be guessed to find or forge another request's log lines.
        return secrets.token_hex(16)
