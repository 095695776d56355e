"""Logging: one JSON object per line, so no value can forge a line or hide a field."""

from __future__ import annotations

import json
import logging
import sys
import time

#: ``extra=`` keys that are copied into the record; anything else stays out.
FIELDS = (
    "event",
    "user_id",
    "session_id",
    "method",
    "route",
    "status",
    "latency_ms",
    "request_id",
    "client",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=True)


class TerminalFormatter(JsonFormatter):
    """For a person at a terminal: one readable line, the same allow-listed fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = json.loads(super().format(record))
        when, level, logger = entry.pop("time"), entry.pop("level"), entry.pop("logger")
        head = f"{when} {level:7} {logger}: {entry.pop('message')}"
        rest = " ".join(f"{key}={json.dumps(value)}" for key, value in entry.items())
        return f"{head} {rest}".rstrip()


def configure_logging(level: str = "INFO") -> None:
    """JSON lines, or readable lines when stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TerminalFormatter() if sys.stderr.isatty() else JsonFormatter())
    handler.setLevel(level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Events are counted as metrics whatever the log level (see authgate.metrics).
    logging.getLogger("authgate").setLevel(min(logging.INFO, logging.getLevelName(level)))


class AccessLog:
    """One JSON line per request, written straight to stderr.

    The logging module costs more than the rest of a protected request; every value here is
    either ours (route template, status, latency) or validated at the edge (request id,
    client address), so the line is assembled directly. At a terminal it goes through the
    readable formatter instead.
    """

    def __init__(self) -> None:
        self._readable = sys.stderr.isatty()
        self._second = -1
        self._stamp = ""

    def write(
        self, method: str, route: str, status: int, latency_ms: float, request_id: str, client: str
    ) -> None:
        if self._readable:
            logging.getLogger("authgate.access").info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "latency_ms": latency_ms,
                    "request_id": request_id,
                    "client": client,
                },
            )
            return
        now = time.time()
        if int(now) != self._second:
            self._second = int(now)
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "Z"
        sys.stderr.write(
            f'{{"time": "{self._stamp}", "level": "info", "logger": "authgate.access", '
            f'"message": "request", "method": {json.dumps(method)}, "route": {json.dumps(route)}, '
            f'"status": {status}, "latency_ms": {latency_ms:.3f}, '
            f'"request_id": {json.dumps(request_id)}, "client": {json.dumps(client)}}}\n'
        )
