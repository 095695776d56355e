"""The GET scenarios against the baseline, and worker memory as distinct tokens pile up."""

from __future__ import annotations

import math
from collections.abc import Callable

import seed
from harness import Harness, all_clean, median_run, mib, rate_ratio
from load import Load, Result
from plan import THREADS
from report import MemoryRow, Row, Target
from servers import Server

#: Worker memory may grow this much (a fraction) between 7x and 12x the cache size in
#: distinct tokens; an unbounded cache would add about 1 KiB per token, some 40%.
MEMORY_GROWTH_ALLOWED = 0.05


def measure(
    harness: Harness, baseline: Server, server: Server, accounts: seed.Accounts, token: str
) -> dict[str, Result]:
    """baseline, public, reused token, unique tokens: interleaved rounds, the median of each."""
    plan = harness.plan
    unique_count = 2 * plan.cache_size * harness.workers
    tokens = seed.mint_access_tokens(
        token, harness.signing_key, unique_count, harness.file("unique")
    )
    header = [f"x-access-token: {token}"]
    seconds = plan.round_seconds
    scenarios: dict[str, Callable[[], Load]] = {
        "baseline": lambda: harness.load(baseline, "/api/test/all", duration=seconds),
        "public": lambda: harness.load(server, "/api/test/all", duration=seconds),
        "reused": lambda: harness.load(server, "/api/test/user", headers=header, duration=seconds),
        "unique": lambda: harness.load(
            server,
            "/api/test/user",
            "unique_tokens",
            duration=seconds,
            args=[str(tokens), str(THREADS)],
        ),
    }
    for warm_up in (baseline, server):  # first requests import and allocate; not measured
        harness.load(warm_up, "/api/test/all", duration=1).result()
    runs: dict[str, list[Result]] = {name: [] for name in scenarios}
    for _ in range(plan.rounds):
        for name, start in scenarios.items():
            runs[name].append(start().result())
    found = {name: median_run(results) for name, results in runs.items()}
    base = found["baseline"]
    rows = [
        ("baseline: Starlette on Granian, GET /api/test/all", "baseline"),
        ("public GET /api/test/all", "public"),
        ("protected GET /api/test/user, one token reused", "reused"),
        (f"protected, unique tokens ({unique_count:,} cycled; cache never hits)", "unique"),
    ]
    for label, name in rows:
        ratio = rate_ratio(found[name], base)
        note = "" if name == "baseline" else f"{ratio:.2f} x baseline" if ratio else ""
        harness.add(Row(label, "-", found[name], note))
    for name, label, required in (
        ("public", "public GET /api/test/all", 0.9),
        ("reused", "protected, reused token", 0.85),
        ("unique", "protected, unique tokens", 0.3),
    ):
        harness.report.targets.append(
            Target(
                f"{label} / baseline",
                required,
                rate_ratio(found[name], base),
                f"{found[name].rate:,.0f} / {base.rate:,.0f} req/s",
                clean=all_clean(found[name], base),
            )
        )
    return found


def measure_memory(
    harness: Harness, server: Server, accounts: seed.Accounts, unique: Result
) -> None:
    """Worker memory as distinct tokens pile up far past the cache size.

    Sampled after 2x (the unique-token scenario), 7x and 12x the cache size in distinct
    tokens per worker; bounded means no growth between the last two samples, when the
    cache has long been full and turned over.
    """
    plan = harness.plan
    cache = plan.cache_size
    samples = [(2, server.memory())]
    clean = True
    for multiple in (7, 12):
        count = 5 * cache * harness.workers
        template = seed.access_token(server.base_url, accounts)
        tokens = seed.mint_access_tokens(
            template, harness.signing_key, count, harness.file("memory")
        )
        # Long enough that every token is presented at least once.
        seconds = max(plan.round_seconds, math.ceil(1.3 * count / max(unique.rate, 1)))
        result = harness.load(
            server,
            "/api/test/user",
            "unique_tokens",
            duration=seconds,
            args=[str(tokens), str(THREADS)],
        ).result()
        clean = clean and result.clean
        harness.add(Row(f"protected, {count:,} more distinct tokens (memory check)", "-", result))
        samples.append((multiple, server.memory()))
    harness.report.memory += [
        MemoryRow(
            f"RSS after {multiple * cache:,} distinct tokens per worker", "SQLite", mib(memory)
        )
        for multiple, memory in samples
    ]
    (_, middle), (_, last) = samples[-2:]
    earlier = {m.pid: m.rss_kib for m in middle}
    growth = max((m.rss_kib - earlier[m.pid]) / earlier[m.pid] for m in last if m.pid in earlier)
    grown_mib = max((m.rss_kib - earlier.get(m.pid, m.rss_kib)) / 1024 for m in last)
    harness.report.targets.append(
        Target(
            f"worker memory growth, {7 * cache:,} -> {12 * cache:,} distinct tokens"
            f" per worker (cache size {cache:,})",
            MEMORY_GROWTH_ALLOWED,
            growth,
            f"{grown_mib:+.1f} MiB at most per worker (an unbounded cache: about "
            f"+{5 * cache / 1024:,.0f} MiB)",
            clean=clean,
            ceiling=True,
        )
    )
