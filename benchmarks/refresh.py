"""Refresh: with rotation on an empty table and with stored tokens, beside its raw floor (asyncpg
on PostgreSQL, the stdlib ``sqlite3`` on SQLite); and without rotation, one token re-sent."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import seed
from harness import Harness, all_clean, format_ratio, rate_ratio
from load import Result
from plan import REFRESH_CONNECTIONS, THREADS
from report import Row, Target
from servers import Server

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Floor:
    """The same rotation without HTTP, run on the server's own database."""

    name: str  # in the targets: "raw asyncpg rotation"
    label: str  # the row
    run: Callable[[], Result]
    when_stored: bool  # run it again after the stored tokens are written


@dataclass(frozen=True)
class Refresh:
    """What one backend's refresh scenarios need besides the server."""

    backend: str
    store: Callable[[], None]  # writes the stored tokens
    floor: Floor | None
    #: Another authgate on the same database with AUTHGATE_REFRESH_ROTATION=false, or None.
    without_rotation: Callable[[], AbstractContextManager[Server]] | None


def _rotating(
    harness: Harness, server: Server, accounts: seed.Accounts, duration: int | None
) -> Result:
    tokens = seed.refresh_tokens(server.base_url, accounts, 2 * REFRESH_CONNECTIONS)
    path = seed.write_lines(tokens, harness.file("refresh"))
    return harness.load(
        server,
        "/api/auth/refreshtoken",
        "refresh",
        connections=REFRESH_CONNECTIONS,
        duration=duration,
        args=[str(path), str(THREADS)],
    ).result()


def _same_token(
    harness: Harness, server: Server, accounts: seed.Accounts, duration: int | None
) -> Result:
    path = seed.write_lines(
        seed.refresh_tokens(server.base_url, accounts, 1), harness.file("same-token")
    )
    return harness.load(
        server,
        "/api/auth/refreshtoken",
        "refresh_same",
        connections=REFRESH_CONNECTIONS,
        duration=duration,
        args=[str(path)],
    ).result()


def measure(
    harness: Harness,
    server: Server,
    accounts: seed.Accounts,
    refresh: Refresh,
    *,
    stored: bool = True,
) -> dict[str, Result]:
    """Refresh on the empty table and its floor; without rotation (when asked); then
    ``store()`` the stored tokens and refresh again (and the floor again, when asked).

    Returns the results by name: ``refresh``, ``floor``, ``no_rotation``, ``refresh_full``,
    ``floor_full`` (those that ran).
    """
    plan = harness.plan
    backend = refresh.backend
    if not plan.quick:
        _rotating(harness, server, accounts, 2)  # the pool's connections; not measured
    empty = _rotating(harness, server, accounts, None)
    harness.add(Row("refresh with rotation", backend, empty))
    found = {"refresh": empty}
    if refresh.floor is not None:
        found["floor"] = _floor(harness, refresh.floor, backend, empty, None)
    if refresh.without_rotation is not None:
        found["no_rotation"] = _without_rotation(
            harness, refresh.without_rotation, accounts, backend, empty
        )
    if not stored:
        return found
    started = time.monotonic()
    refresh.store()
    seeded_seconds = time.monotonic() - started
    count = plan.stored_tokens
    full = _rotating(harness, server, accounts, None)
    harness.add(
        Row(
            f"refresh with rotation, {count:,} stored tokens",
            backend,
            full,
            f"{format_ratio(full.rate, empty.rate)} x empty table; "
            f"rows written in {seeded_seconds:.0f} s",
        )
    )
    harness.report.targets.append(
        Target(
            f"refresh with {count:,} stored tokens / empty table ({backend})",
            0.9,
            rate_ratio(full, empty),
            f"{full.rate:,.0f} / {empty.rate:,.0f} req/s",
            clean=all_clean(full, empty),
        )
    )
    found["refresh_full"] = full
    if refresh.floor is not None and refresh.floor.when_stored:
        found["floor_full"] = _floor(harness, refresh.floor, backend, full, count)
    return found


def _floor(
    harness: Harness, floor: Floor, backend: str, authgate: Result, stored: int | None
) -> Result:
    raw = floor.run()
    tokens = "" if stored is None else f" with {stored:,} stored tokens"
    harness.add(
        Row(
            f"{floor.label}{tokens}",
            backend,
            raw,
            f"authgate refresh = {format_ratio(authgate.rate, raw.rate)} x this",
        )
    )
    harness.report.targets.append(
        Target(
            f"refresh{tokens} ({backend}) / {floor.name}",
            0.5,
            rate_ratio(authgate, raw),
            f"{authgate.rate:,.0f} / {raw.rate:,.0f} rotations/s",
            clean=authgate.clean,
        )
    )
    return raw


def _without_rotation(
    harness: Harness,
    start: Callable[[], AbstractContextManager[Server]],
    accounts: seed.Accounts,
    backend: str,
    rotating: Result,
) -> Result:
    """One refresh token, re-sent from every connection, by a server that does not rotate."""
    with start() as server:
        if not harness.plan.quick:
            _same_token(harness, server, accounts, 2)  # the pool's connections; not measured
        result = _same_token(harness, server, accounts, None)
    harness.add(
        Row(
            f"refresh, rotation off, one token re-sent by all {REFRESH_CONNECTIONS} connections",
            backend,
            result,
            f"{format_ratio(result.rate, rotating.rate)} x rotation on",
        )
    )
    harness.report.targets.append(
        Target(
            f"refresh, rotation off / rotation on ({backend})",
            1.0,
            rate_ratio(result, rotating),
            f"{result.rate:,.0f} / {rotating.rate:,.0f} req/s",
            clean=all_clean(result, rotating),
        )
    )
    return result


def _start_at(harness: Harness) -> float:
    """When the floor's processes start rotating: after every one has set up its chains."""
    return time.time() + (1 if harness.plan.quick else 3)


def asyncpg_floor(harness: Harness, url: str) -> Floor:
    """benchmarks/raw_rotation.py in one process per worker, sharing the concurrency."""

    def run() -> Result:
        start_at = _start_at(harness)
        return _run_floor(
            [
                [
                    *(sys.executable, str(HERE / "raw_rotation.py"), "--url", url),
                    *("--concurrency", str(REFRESH_CONNECTIONS // harness.workers)),
                    *("--duration", str(harness.plan.duration_seconds)),
                    *("--start-at", str(start_at)),
                ]
                for _ in range(harness.workers)
            ]
        )

    return Floor(
        "raw asyncpg rotation",
        f"raw asyncpg rotation loop, concurrency {REFRESH_CONNECTIONS} (no HTTP)",
        run,
        when_stored=False,
    )


def sqlite_floor(harness: Harness, database: Path) -> Floor:
    """benchmarks/raw_sqlite_rotation.py: one process, whatever the worker count (SQLite
    has one writer at a time)."""

    def run() -> Result:
        return _run_floor(
            [
                [
                    *(sys.executable, str(HERE / "raw_sqlite_rotation.py")),
                    *("--database", str(database)),
                    *("--chains", str(REFRESH_CONNECTIONS)),
                    *("--duration", str(harness.plan.duration_seconds)),
                    *("--start-at", str(_start_at(harness))),
                ]
            ]
        )

    return Floor(
        "raw sqlite3 rotation",
        f"raw sqlite3 rotation loop, {REFRESH_CONNECTIONS} chains in turn, one process (no HTTP)",
        run,
        when_stored=True,
    )


def _run_floor(commands: list[list[str]]) -> Result:
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our scripts
        for command in commands
    ]
    outputs = [json.loads(process.communicate()[0]) for process in processes]
    if any(process.returncode for process in processes):
        raise RuntimeError(f"the raw rotation loop failed: {commands[0]}")
    return Result(
        requests=sum(int(out["rotations"]) for out in outputs),
        seconds=max(float(out["seconds"]) for out in outputs),
        p50_ms=None,
        p99_ms=None,
        non_2xx=0,
    )
