"""Prometheus metrics (the only importer of prometheus_client), correct with several workers.

``authgate serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before it
starts workers; each worker writes its samples there and ``/metrics`` adds them up.
Security events (sign-ins, throttling, reuse detected, revocations...) are counted from
the same log records that report them, so the two can never disagree.
"""

from __future__ import annotations

import logging
import os

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

    def render(self, extra: dict[str, float] | None = None) -> bytes:
        """The exposition text: this process's registry, or every worker's in multiprocess mode."""
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


class EventCounter(logging.Handler):
    """Counts every log record that carries an ``event`` field."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(level=logging.DEBUG)
        self._events = metrics.events

    def emit(self, record: logging.LogRecord) -> None:
        event = record.__dict__.get("event")
        if isinstance(event, str):
            self._events.labels(event).inc()


def mark_worker_gone(pid: int) -> None:
    """Drop a dead worker's live gauges (prometheus_client's multiprocess contract)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
