"""`make soak`: does a worker's memory reach a plateau under a long mixed load?

Starts `authgate serve` (SQLite in a fresh data directory, or a PostgreSQL database created
for the run when a URL is given), drives it for ``--minutes`` with the clients of
``soak_clients`` (sign-ups, sign-ins, wrong passwords, protected GETs, refreshes with
rotation, unknown and replayed tokens, sign-outs, from thousands of client addresses), samples
every worker's and hash process's resident memory every ``--interval`` seconds, and prints the
samples, each worker's growth in the first and second halves, and a plateau verdict. Only
127.0.0.1; it stops by itself. The exit code is 0 for a plateau, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import seed
from servers import Server, authgate_env, migrate, start_authgate
from soak_clients import Clients, Mix, Tally
from soak_memory import Sample, Verdict, growth_lines, table, take, verdict, write_samples

HERE = Path(__file__).resolve().parent

#: Generous limits, as `make bench` sets, but on one-minute windows: the soak measures memory
#: under load, not the throttle, and a window's counters are held for the whole window (the
#: defaults keep sign-ups for an hour and failed sign-ins for 15 minutes; docs/operations.md).
SOAK_LIMITS = {
    "AUTHGATE_RATE_LIMIT_SIGN_IN_PER_ADDRESS": "100000/minute",
    "AUTHGATE_RATE_LIMIT_SIGN_IN_FAILURES_PER_ACCOUNT": "100000/minute",
    "AUTHGATE_RATE_LIMIT_SIGN_UP_PER_ADDRESS": "100000/minute",
    "AUTHGATE_RATE_LIMIT_REFRESH_PER_ADDRESS": "100000/minute",
}


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the load")
    parser.add_argument(
        "--workers", type=int, default=1, help="authgate workers (default 1, as for SQLite)"
    )
    parser.add_argument(
        "--interval", type=float, default=30.0, help="seconds between memory samples"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--rate", type=float, default=150.0, help="requests per second at most (0: no cap)"
    )
    parser.add_argument("--addresses", type=int, default=5000, help="distinct client addresses")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.03,
        help="second-half growth allowed, as a fraction of a worker's RSS (default 0.03)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("AUTHGATE_TEST_POSTGRES_URL", ""),
        help="a PostgreSQL server to create a database on (default: $AUTHGATE_TEST_POSTGRES_URL)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another setting for the server, e.g. --env MALLOC_ARENA_MAX=2 (repeatable)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=HERE / "results" / "soak.md",
        help="where to write the report as markdown",
    )
    parser.add_argument(
        "--visits", type=int, default=0, help="stop after this many visits (default: no limit)"
    )
    parser.add_argument("--seed", type=int, default=11, help="the load mix's random seed")
    return parser.parse_args(argv)


def describe(args: argparse.Namespace, backend: str) -> list[str]:
    cpu = next(
        (
            line.partition(":")[2].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    load = Path("/proc/loadavg").read_text().split()[0]
    return [
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
        f"load average before the run: {load}",
        f"software: CPython {platform.python_version()}, granian {version('granian')}, "
        f"limits {version('limits')}",
        f"server: authgate serve --server granian --workers {args.workers}, {backend}; "
        "rate limits 100000/minute each; every other setting at its default"
        + (f"; extra: {', '.join(args.env)}" if args.env else ""),
        f"load: {args.minutes:g} minutes, {args.clients} clients, at most {args.rate:g} "
        f"requests/s, {args.addresses} client addresses; RSS sampled every {args.interval:g} s",
    ]


async def soak(server: Server, args: argparse.Namespace) -> tuple[list[Sample], Tally, float]:
    """The load and the sampler side by side; samples before, during and after the load."""
    clients = Clients(
        server.base_url,
        count=args.clients,
        rate=args.rate,
        addresses=args.addresses,
        workers=args.workers,
        mix=Mix(),
        seed=args.seed,
        max_visits=args.visits,
    )
    duration = args.minutes * 60
    samples = [take(server, -1, clients.tally)]
    print(_progress(samples[-1]), flush=True)
    started = time.monotonic()
    load = asyncio.create_task(clients.run(started + duration))
    next_sample = started + min(args.interval, duration)
    while not load.done():
        await asyncio.wait({load}, timeout=max(0.0, next_sample - time.monotonic()))
        now = time.monotonic()
        if now >= next_sample or load.done():
            seconds = min(now - started, duration)
            if seconds > samples[-1].seconds + 1:
                samples.append(take(server, seconds, clients.tally))
                print(_progress(samples[-1]), flush=True)
            next_sample = min(next_sample + args.interval, started + duration)
            if next_sample <= now:
                next_sample = now + args.interval
    tally = load.result()
    duration = min(duration, time.monotonic() - started)
    await asyncio.sleep(min(5.0, args.interval))  # batched access lines and metrics drain
    samples.append(take(server, duration + min(5.0, args.interval), tally))
    print(_progress(samples[-1]) + " (after the load)", flush=True)
    return samples, tally, duration


def _progress(sample: Sample) -> str:
    workers = ", ".join(f"{kib / 1024:.1f}" for _, kib in sorted(sample.workers.items()))
    hashers = sum(sample.hashers.values()) / 1024
    when = f"{sample.seconds / 60:5.1f} min" if sample.seconds >= 0 else "   before"
    return (
        f"soak: {when}  {sample.requests:>9,} requests  workers {workers} MiB  "
        f"hash processes {len(sample.hashers)} ({hashers:.1f} MiB in all)"
    )


def answers(tally: Tally) -> list[str]:
    lines = [f"{tally.requests:,} requests in {tally.visits:,} finished visits"]
    for (what, status), count in sorted(tally.answers.items()):
        lines.append(f"  {what}: {status} x {count:,}")
    bad = sum(tally.unexpected.values())
    lines.append(f"unexpected answers: {bad:,}")
    for (what, status), count in sorted(tally.unexpected.items()):
        lines.append(f"  {what}: {status} x {count:,}")
    for name, count in sorted(tally.transport_errors.items()):
        lines.append(f"transport errors: {name} x {count:,}")
    return lines


def render(
    header: list[str], samples: list[Sample], tally: Tally, found: Verdict, *, markdown: bool
) -> str:
    bullet = "- " if markdown else ""
    parts = [
        "\n".join(bullet + line for line in header),
        "",
        *table(samples, markdown=markdown),
        "",
        "\n".join(bullet + line for line in growth_lines(found)),
        "",
        ("**verdict: " + found.label + "**") if markdown else "verdict: " + found.label,
        "",
    ]
    answer_lines = answers(tally)
    if markdown:
        answer_lines = [f"    {line}" for line in answer_lines]
    parts += answer_lines
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    extra = dict(pair.split("=", 1) for pair in args.env)
    with tempfile.TemporaryDirectory(prefix="authgate-soak-") as scratch:
        workdir = Path(scratch)
        if args.postgres_url:
            with seed.postgres_database(args.postgres_url) as url:
                outcome = _run(args, workdir, url, extra)
        else:
            outcome = _run(args, workdir, None, extra)
    header, samples, tally, duration = outcome
    found = verdict(samples, duration, args.tolerance)
    print()
    print(render(header, samples, tally, found, markdown=False))
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(render(header, samples, tally, found, markdown=True))
    write_samples(samples, args.markdown.with_suffix(".csv"))
    print(f"soak: markdown written to {args.markdown}")
    return 0 if found.plateau and not tally.unexpected else 1


def _run(
    args: argparse.Namespace, workdir: Path, database_url: str | None, extra: dict[str, str]
) -> tuple[list[str], list[Sample], Tally, float]:
    backend = "PostgreSQL" if database_url else "SQLite"
    settings = {
        **SOAK_LIMITS,
        "AUTHGATE_TRUSTED_PROXIES": "127.0.0.1/32",
        "AUTHGATE_REFRESH_GRACE_SECONDS": "0",  # a replayed token is reuse, as the mix expects
        **extra,
    }
    env = authgate_env(workdir / "data", secrets.token_urlsafe(48), database_url, settings)
    migrate(env, workdir)
    header = describe(args, backend)
    print("\n".join(header), flush=True)
    with start_authgate(env, workdir, workers=args.workers) as server:
        samples, tally, duration = asyncio.run(soak(server, args))
    return header, samples, tally, duration


if __name__ == "__main__":
    sys.exit(main())
