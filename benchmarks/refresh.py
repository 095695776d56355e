"""Refresh with rotation, on an empty table and with stored tokens; the raw asyncpg floor."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import seed
from harness import Harness, all_clean, format_ratio, rate_ratio
from load import Result
from plan import REFRESH_CONNECTIONS, THREADS
from report import Row, Target
from servers import Server

HERE = Path(__file__).resolve().parent


def measure(
    harness: Harness,
    server: Server,
    accounts: seed.Accounts,
    backend: str,
    store: Callable[[], None],
    *,
    raw_url: str | None = None,
) -> dict[str, Result]:
    """Refresh on the empty table, ``store()`` the stored tokens, refresh again.

    With ``raw_url`` (PostgreSQL), the raw asyncpg loop runs on that database right after
    the empty-table refresh.
    """
    plan = harness.plan

    def refresh(duration: int | None = None) -> Result:
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

    if not plan.quick:
        refresh(2)  # the pool's connections and the prepared statements; not measured
    empty = refresh()
    harness.add(Row("refresh with rotation", backend, empty))
    found = {f"refresh_{backend}": empty}
    if raw_url is not None:
        raw = _raw_rotation(harness, raw_url)
        harness.add(
            Row(
                f"raw asyncpg rotation loop, concurrency {REFRESH_CONNECTIONS} (no HTTP)",
                backend,
                raw,
                f"authgate refresh = {format_ratio(empty.rate, raw.rate)} x this",
            )
        )
        harness.report.targets.append(
            Target(
                "refresh (PostgreSQL) / raw asyncpg rotation",
                0.5,
                rate_ratio(empty, raw),
                f"{empty.rate:,.0f} / {raw.rate:,.0f} rotations/s",
                clean=empty.clean,
            )
        )
    started = time.monotonic()
    store()
    seeded_seconds = time.monotonic() - started
    stored = plan.stored_tokens
    full = refresh()
    harness.add(
        Row(
            f"refresh with rotation, {stored:,} stored tokens",
            backend,
            full,
            f"{format_ratio(full.rate, empty.rate)} x empty table; "
            f"rows written in {seeded_seconds:.0f} s",
        )
    )
    harness.report.targets.append(
        Target(
            f"refresh with {stored:,} stored tokens / empty table ({backend})",
            0.9,
            rate_ratio(full, empty),
            f"{full.rate:,.0f} / {empty.rate:,.0f} req/s",
            clean=all_clean(full, empty),
        )
    )
    found[f"refresh_full_{backend}"] = full
    return found


def _raw_rotation(harness: Harness, url: str) -> Result:
    """benchmarks/raw_rotation.py in one process per worker, sharing the concurrency."""
    plan = harness.plan
    start_at = time.time() + (
        1 if plan.quick else 3
    )  # after every process has connected and set up its chains
    processes = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [
                *(sys.executable, str(HERE / "raw_rotation.py"), "--url", url),
                *("--concurrency", str(REFRESH_CONNECTIONS // harness.workers)),
                *("--duration", str(plan.duration_seconds)),
                *("--start-at", str(start_at)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(harness.workers)
    ]
    outputs = [json.loads(process.communicate()[0]) for process in processes]
    if any(process.returncode for process in processes):
        raise RuntimeError("benchmarks/raw_rotation.py failed")
    return Result(
        requests=sum(int(out["rotations"]) for out in outputs),
        seconds=max(float(out["seconds"]) for out in outputs),
        p50_ms=None,
        p99_ms=None,
        non_2xx=0,
    )
