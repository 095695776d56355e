"""`make bench` still works: its seconds-long quick mode runs every scenario. No timings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: A hang guard, not a timing: the quick bench starts six servers on a shared machine.
TIMEOUT_SECONDS = 300

SCENARIOS = [
    "baseline: Starlette on Granian, GET /api/test/all",
    "public GET /api/test/all",
    "protected GET /api/test/user, one token reused",
    "protected, unique tokens",
    "more distinct tokens (memory check)",
    "sign-in, 32 connections",
    "probe: GET /api/test/user, 1 connection, idle",
    "probe: same, while 32 connections sign in",
    "control: the idle probe while every core spins",
    "sign-up, 32 connections, a new username each",
    "refresh with rotation",
    "raw sqlite3 rotation loop",
    "refresh, rotation off, one token re-sent by all 32 connections",
    "stored tokens",
    "peak (VmHWM) after every scenario",
    "Sign-in by worker count",
]
TARGETS = [
    "public GET /api/test/all / baseline",
    "protected, reused token / baseline",
    "protected, unique tokens / baseline",
    "sign-in (SQLite) / (min(cores, workers x hash processes) / verify time)",
    "sign-in (PostgreSQL) / (min(cores, workers x hash processes) / verify time)",
    "sign-in, SQLite / PostgreSQL",
    "sign-up, SQLite / PostgreSQL",
    "probe p99 during the sign-in burst / control p99",
    "worker memory growth",
    "refresh (PostgreSQL) / raw asyncpg rotation",
    "refresh (SQLite) / raw sqlite3 rotation",
    "stored tokens (SQLite) / raw sqlite3 rotation",
    "refresh, SQLite / PostgreSQL",
    "stored tokens, SQLite / PostgreSQL",
    "stored tokens / empty table (SQLite)",
    "stored tokens / empty table (PostgreSQL)",
    "refresh, rotation off / rotation on (SQLite)",
    "refresh, rotation off / rotation on (PostgreSQL)",
    "static-first router / Starlette router, CPU per request, GET /api/test/all",
    "static-first router / Starlette router, CPU per request, GET /api/test/user",
    "static-first router / Starlette router, CPU per request, GET /healthz",
]


def run_benchmark(*args: str) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a benchmark script as `make` would, without the suite's AUTHGATE_* settings; it
    must exit 0. Its result and its whole output."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHGATE_")}
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return done, output


@pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="the benchmark's load generator wrk is not installed (apt-get install wrk)",
)
def test_the_quick_benchmark_runs_every_scenario_and_reports_every_target(
    tmp_path: Path,
) -> None:
    markdown = tmp_path / "report.md"
    postgres = os.environ.get("AUTHGATE_TEST_POSTGRES_URL", "")
    done, output = run_benchmark(
        "benchmarks/run.py", "--quick", "--markdown", str(markdown), "--postgres-url", postgres
    )
    written = markdown.read_text()
    for label in SCENARIOS + TARGETS:
        assert label in done.stdout, f"{label!r} missing from:\n{output}"
        assert label in written, f"{label!r} missing from the markdown report"
    target_lines = [line for line in done.stdout.splitlines() if line.startswith(tuple(TARGETS))]
    statuses = ("met", "NOT met", "not run")
    assert all(any(status in line for status in statuses) for line in target_lines)
    if postgres:
        assert "raw asyncpg rotation loop" in done.stdout
        assert "not run" not in "".join(line for line in target_lines if "PostgreSQL" in line), (
            output
        )


@pytest.mark.skipif(
    shutil.which("wrk") is None,
    reason="the benchmark's load generator wrk is not installed (apt-get install wrk)",
)
def test_only_runs_the_chosen_scenarios(tmp_path: Path) -> None:
    """`make bench BENCH_ARGS="--only ..."`: a subset, with no baseline and no PostgreSQL."""
    done, output = run_benchmark(
        *("benchmarks/run.py", "--quick", "--only", "sign-up"),
        *("--markdown", str(tmp_path / "report.md"), "--postgres-url", ""),
    )
    for label in ("sign-up, 32 connections, a new username each", "only: sign-up"):
        assert label in done.stdout, f"{label!r} missing from:\n{output}"
    for label in (
        "baseline",
        "sign-in, 32 connections",
        "probe:",
        "refresh with rotation",
        "router",
    ):
        assert label not in done.stdout, f"{label!r} ran:\n{output}"


SOAK_LINES = [
    "minute  requests  access tokens issued  worker 1 MiB",
    "hash processes (count: MiB each)",
    "first half",
    "second half",
    "verdict: PLATEAU",
    "sign-up: 200 x",
    "sign-in: 200 x",
    "refresh: 200 x",
    "protected GET: 200 x",
    "sign-out: 200 x",
    "unexpected answers: 0",
]


def test_a_seconds_long_soak_samples_memory_and_gives_a_verdict(tmp_path: Path) -> None:
    """`make soak` still works: 16 visits (some 500 requests, capped at 150/s) against one
    worker on SQLite, two minutes at most. The tolerance is set far out of reach, so the
    verdict and the exit code speak only of the report's shape and of unexpected answers
    (none), never of how memory behaved in so short a run."""
    markdown = tmp_path / "soak.md"
    done, output = run_benchmark(
        *("benchmarks/soak.py", "--minutes", "2", "--visits", "16"),
        *("--interval", "1", "--clients", "8", "--workers", "1", "--tolerance", "100"),
        *("--postgres-url", "", "--markdown", str(markdown)),
    )
    for line in SOAK_LINES:
        assert line in done.stdout, f"{line!r} missing from:\n{output}"
    samples = [line for line in done.stdout.splitlines() if line.startswith("soak: ")]
    assert len(samples) >= 4, output  # before, at least two during, after
    assert "**verdict: PLATEAU" in markdown.read_text()
    assert markdown.with_suffix(".csv").read_text().count("\n") >= 4
