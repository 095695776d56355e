"""`make bench`: authgate under wrk, every figure a ratio to a bare Starlette-on-Granian app.

Starts the baseline (benchmarks/baseline_app.py) and authgate on SQLite, then authgate on
PostgreSQL when a URL is given, with the same worker count, drives them with wrk in its own
process, and prints the targets (met or not) above a table of every scenario. The same
report is written as markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import seed
from bench import Bench
from load import ensure_wrk
from plan import DEFAULTS, SCENARIOS, Plan
from report import render, render_sign_ins

HERE = Path(__file__).resolve().parent


def describe_machine(postgres_url: str) -> list[str]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.partition(":")[2].strip()
            break
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    wrk = subprocess.run(  # noqa: S603 - wrk's version
        [ensure_wrk(), "-v"], capture_output=True, text=True, check=False
    ).stdout.split(" [")[0]
    from importlib.metadata import version

    load = Path("/proc/loadavg").read_text().split()[0]
    return [
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {os.cpu_count()} cores ({cpu}), {memory_kib / 1024 / 1024:.0f} GiB, "
        f"{platform.system()} {platform.release()}; wrk, the servers and the database share "
        "the cores, so read ratios, not absolute figures",
        f"software: CPython {platform.python_version()}, granian {version('granian')}, "
        f"starlette {version('starlette')}, {wrk}"
        + (f", PostgreSQL {seed.postgres_version(postgres_url)}" if postgres_url else ""),
        f"load average before the run: {load} (1 minute); anything else running on the "
        "machine skews every figure",
    ]


def hash_costs() -> list[str]:
    """argon2id verify time at the OWASP-equivalent settings, for sizing (one thread)."""
    lines = []
    for memory_kib, time_cost in ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)):
        seconds = seed.argon2_verify_seconds(
            memory_kib=memory_kib, time_cost=time_cost, parallelism=1, samples=5
        )
        default = (
            " (default)"
            if (memory_kib, time_cost) == (DEFAULTS.argon2_memory_kib, DEFAULTS.argon2_time_cost)
            else ""
        )
        lines.append(
            f"m={memory_kib} KiB, t={time_cost}, p=1{default}: {seconds * 1000:.1f} ms "
            f"per verify = {1 / seconds:.0f} sign-ins/s per core at most"
        )
    return lines


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--workers", type=int, nargs="+", default=None, help="worker counts (default: 1 2)"
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the GET scenarios")
    parser.add_argument("--stored-tokens", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("AUTHGATE_TEST_POSTGRES_URL", ""),
        help="a PostgreSQL server to create a database on (default: $AUTHGATE_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=HERE / "results" / "latest.md",
        help="where to write the report as markdown",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a seconds-long smoke run: tiny sizes, no timings"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SCENARIOS,
        default=list(SCENARIOS),
        help="run only these groups of scenarios (default: all); 'stored' and 'no-rotation' "
        "run the refresh on an empty table too, which they are compared with",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    ensure_wrk()
    if args.quick:
        # Cheap hashing too: the smoke run checks that everything runs, not how fast.
        plan = Plan(1, 1, 1, 2_000, 100, args.postgres_url, 1024, 1, frozenset(args.only))
        workers = args.workers or [1]
    else:
        plan = Plan(
            duration_seconds=args.duration,
            rounds=args.rounds,
            round_seconds=max(1, args.duration // 2),
            stored_tokens=args.stored_tokens,
            cache_size=DEFAULTS.token_cache_size,
            postgres_url=args.postgres_url,
            only=frozenset(args.only),
        )
        workers = args.workers or [1, 2]
    header = describe_machine(plan.postgres_url)
    if not plan.quick:
        header.append("argon2id cost against sign-in capacity:")
        header += [f"  {line}" for line in hash_costs()]
    print("\n".join(header), flush=True)
    reports = []
    for count in workers:
        with tempfile.TemporaryDirectory(prefix="authgate-bench-") as workdir:
            print(f"\nbench: {count} worker(s)...", flush=True)
            reports.append(Bench(plan, count, Path(workdir)).run())
    print()
    for report in reports:
        print(render(report, markdown=False))
    print(render_sign_ins(reports, markdown=False))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(
        "\n".join(
            f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}" for line in header
        )
        + "\n\n"
        + "\n".join(render(report, markdown=True) for report in reports)
        + "\n"
        + render_sign_ins(reports, markdown=True)
    )
    print(f"bench: markdown written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
