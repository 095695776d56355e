"""Logging: one JSON object per line, so no value can forge a line or hide a field."""

from __future__ import annotations

import functools
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


def stderr_formatter() -> logging.Formatter:
    """JSON lines, or readable lines when stderr is a terminal."""
    return TerminalFormatter() if sys.stderr.isatty() else JsonFormatter()


def configure_logging(level: str = "INFO") -> None:
    """JSON lines, or readable lines when stderr is a terminal."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(stderr_formatter())
    handler.setLevel(level)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Events are counted as metrics whatever the log level (see authgate.metrics).
    logging.getLogger("authgate").setLevel(min(logging.INFO, logging.getLevelName(level)))
    # Alembic reports each step at INFO, on every command that checks the schema; `migrate`
    # says in one line what it did, so those lines are for debugging.
    debugging = logging.getLevelName(level) <= logging.DEBUG
    logging.getLogger("alembic").setLevel(logging.DEBUG if debugging else logging.WARNING)


#: Granian's own loggers (its supervisor's and workers' lines, e.g. "Spawning worker-1"),
#: given to ``logging.config.dictConfig`` by Granian: the same lines on stderr as ours,
#: instead of its plain text on stdout. Its access log stays off (authgate writes its own).
GRANIAN_LOGGING: dict[str, object] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"authgate": {"()": "authgate.logs.stderr_formatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "authgate",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {
        "_granian": {"handlers": ["stderr"], "propagate": False},
        "granian.access": {"handlers": ["stderr"], "propagate": False},
    },
}


class AccessLog:
    """One JSON line per request, to stderr, written in batches.

    The logging module costs more than the rest of a protected request, and so does a write
    per request: each write releases the GIL, which the server's I/O threads take. Lines
    are assembled directly (every value is ours or validated at the edge) and written by
    ``flush``, which the caller runs at least every quarter second, and which runs itself
    once ``BATCH_LINES`` are waiting. At a terminal, each line goes through the readable
    formatter at once instead.
    """

    BATCH_LINES = 256

    def __init__(self) -> None:
        self._readable = sys.stderr.isatty()
        self._second = -1
        self._stamp = ""
        self._lines: list[str] = []

    def write(
        self, method: str, route: str, status: int, latency_ms: float, request_id: str, client: str
    ) -> None:
        """Queue one line. ``request_id`` must already be checked against ``[A-Za-z0-9._-]``
        (it is written unquoted); the other strings are escaped."""
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
        self._lines.append(
            f'{{"time": "{self._stamp}", "level": "info", "logger": "authgate.access", '
            f'"message": "request", "method": {_json(method)}, "route": {_json(route)}, '
            f'"status": {status}, "latency_ms": {latency_ms:.3f}, '
            f'"request_id": "{request_id}", "client": {_json(client)}}}\n'
        )
        if len(self._lines) >= self.BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            sys.stderr.write("".join(lines))
            sys.stderr.flush()


@functools.lru_cache(maxsize=1024)
def _json(value: str) -> str:
    """A JSON string literal; methods, routes and client addresses repeat."""
    return json.dumps(value)
