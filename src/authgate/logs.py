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
