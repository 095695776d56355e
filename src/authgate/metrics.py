"""Prometheus metrics (the only importer of prometheus_client), correct with several workers.

``authgate serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before it
starts workers; each worker writes its samples there and ``/metrics`` adds them up.
Security events (sign-ins, throttling, reuse detected, revocations...) are counted from
the same log records that report them, so the two can never disagree.
"""

from __future__ import annotations

import bisect
import logging
import os
import weakref
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_HASH_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._registry = registry or CollectorRegistry()
        self.requests = Counter(
            "authgate_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self._registry,
        )
        self.latency = Histogram(
            "authgate_http_request_duration_seconds",
            "Time from request to the last byte of the answer, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self._registry,
        )
        self.events = Counter(
            "authgate_events",
            "Security and operational events (sign_in.succeeded, sign_in.failed, throttled, "
            "refresh.reuse_detected, session.revoked, database.unavailable, ...).",
            ["event"],
            registry=self._registry,
        )
        self.hash_seconds = Histogram(
            "authgate_password_hash_seconds",
            "Time of one argon2 hash or verification.",
            buckets=_HASH_BUCKETS,
            registry=self._registry,
        )

        # Requests are tallied in plain dicts and added to the metrics in bulk by ``flush``:
        # prometheus_client's multiprocess values cost a lock, a getpid() and an mmap write
        # per increment, three times per request (docs/benchmarks.md).
        self._pending_requests: dict[tuple[str, str, int], int] = {}
        self._pending_latency: dict[str, _Tally] = {}

    def record_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request; visible after the next ``flush``."""
        key = (route, method, status)
        self._pending_requests[key] = self._pending_requests.get(key, 0) + 1
        tally = self._pending_latency.get(route)
        if tally is None:
            tally = self._pending_latency[route] = _Tally()
        # The first bucket whose bound is >= seconds (Prometheus buckets are "le").
        tally.counts[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        tally.total += seconds

    def flush(self) -> None:
        """Add the tallied requests to the shared metrics."""
        pending, self._pending_requests = self._pending_requests, {}
        latency, self._pending_latency = self._pending_latency, {}
        for (route, method, status), count in pending.items():
            self.requests.labels(route, method, str(status)).inc(count)
        for route, tally in latency.items():
            _add_observations(self.latency.labels(route), tally)

    def render(self, extra: dict[str, float] | None = None) -> bytes:
        """The exposition text: this process's registry, or every worker's in multiprocess mode."""
        self.flush()
        path = os.environ.get(MULTIPROC_ENV)
        if path:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
            text = generate_latest(registry)
        else:
            text = generate_latest(self._registry)
        for name, value in (extra or {}).items():
            text += f"# TYPE {name} gauge\n{name} {value}\n".encode()
        return text


@dataclass
class _Tally:
    """Latencies not yet added: a count per bucket (the last one +Inf), and their sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(_LATENCY_BUCKETS) + 1))
    total: float = 0.0


def _add_observations(child: Any, tally: _Tally) -> None:
    """Add many observations to a histogram child at once. prometheus_client has no public
    call for it; its children keep one value per bucket (non-cumulative) and their sum."""
    for index, count in enumerate(tally.counts):
        if count:
            child._buckets[index].inc(count)
    child._sum.inc(tally.total)


class EventCounter(logging.Handler):
    """Counts every log record that carries an ``event`` field, into each registry given to
    :meth:`count_into` that is still alive (held weakly: a dropped app stops counting)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._targets: weakref.WeakSet[Metrics] = weakref.WeakSet()

    def count_into(self, metrics: Metrics) -> None:
        self.acquire()  # handle() holds the same lock while emit() iterates the set
        try:
            self._targets.add(metrics)
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        event = record.__dict__.get("event")
        if isinstance(event, str):
            for metrics in list(self._targets):
                metrics.events.labels(event).inc()


def mark_worker_gone(pid: int) -> None:
    """Drop a dead worker's live gauges (prometheus_client's multiprocess contract)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
