"""`make bench`: authgate under wrk, every figure a ratio to a bare Starlette-on-Granian app.

Starts the baseline (benchmarks/baseline_app.py) and authgate on SQLite, then authgate on
PostgreSQL when a URL is given, with the same worker count, drives them with wrk in its own
process, and prints the targets (met or not) above a table of every scenario. The same
report is written as markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import seed
from load import Load, Result, ensure_wrk
from report import MemoryRow, Report, Row, Target, render
from servers import Memory, Server, authgate_env, migrate, start_authgate, start_baseline

from authgate.config import Settings

HERE = Path(__file__).resolve().parent
DEFAULTS = Settings()
USERS = 8  # accounts that sign in, in turn
THREADS = 2  # wrk threads for every multi-connection run
GET_CONNECTIONS = 64
SIGN_IN_CONNECTIONS = 32
REFRESH_CONNECTIONS = 32
#: Worker memory may grow this much (a fraction) between 7x and 12x the cache size in
#: distinct tokens; an unbounded cache would add about 1 KiB per token, some 40%.
MEMORY_GROWTH_ALLOWED = 0.05


@dataclass(frozen=True)
class Plan:
    """How long and how big: the full run, or the seconds-long smoke run (``--quick``)."""

    duration_seconds: int
    rounds: int
    round_seconds: int  # each GET run of the interleaved rounds
    stored_tokens: int
    cache_size: int
    postgres_url: str
    argon2_memory_kib: int = DEFAULTS.argon2_memory_kib
    argon2_time_cost: int = DEFAULTS.argon2_time_cost

    @property
    def quick(self) -> bool:
        return self.duration_seconds <= 1


def _mib(memory: Sequence[Memory], peak: bool = False) -> list[float]:
    return [(m.peak_kib if peak else m.rss_kib) / 1024 for m in memory]


def _median(runs: list[Result]) -> Result:
    """The run of median throughput (its latencies come with it)."""
    return sorted(runs, key=lambda result: result.rate)[len(runs) // 2]


def _ratio(numerator: Result | None, denominator: Result | None) -> float | None:
    if numerator is None or denominator is None or not denominator.rate:
        return None
    return numerator.rate / denominator.rate


def _clean(*results: Result | None) -> bool:
    return all(result is None or result.clean for result in results)


class Bench:
    """One worker count: the baseline, authgate on SQLite, and on PostgreSQL if configured."""

    def __init__(self, plan: Plan, workers: int, workdir: Path) -> None:
        self.plan = plan
        self.workers = workers
        self.workdir = workdir
        self.signing_key = secrets.token_urlsafe(48)
        self.report = Report(workers=workers, title=f"{workers} worker(s)")
        self._files = 0

    # -- helpers -----------------------------------------------------------

    def _add(self, row: Row) -> None:
        """Keep ``row`` for the report and show progress at once."""
        self.report.rows.append(row)
        result = row.result
        figure = (
            "not run" if result is None else f"{result.rate:,.1f}/s p99 {_ms(result.p99_ms)} ms"
        )
        print(f"  {row.scenario} [{row.backend}]: {figure}", flush=True)

    def _file(self, stem: str) -> Path:
        self._files += 1
        return self.workdir / f"{stem}-{self._files}.txt"

    def _load(
        self,
        server: Server,
        path: str,
        script: str = "get",
        *,
        connections: int = GET_CONNECTIONS,
        duration: int | None = None,
        headers: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> Load:
        return Load(
            server.url(path),
            script=script,
            workdir=self.workdir,
            connections=connections,
            threads=THREADS if connections > 1 else 1,
            duration_seconds=duration or self.plan.duration_seconds,
            headers=headers,
            args=args,
        )

    def _env(self, data_dir: Path, database_url: str | None) -> dict[str, str]:
        extra = {}
        if self.plan.cache_size != DEFAULTS.token_cache_size:
            extra["AUTHGATE_TOKEN_CACHE_SIZE"] = str(self.plan.cache_size)
        if self.plan.argon2_memory_kib != DEFAULTS.argon2_memory_kib:
            extra["AUTHGATE_ARGON2_MEMORY_KIB"] = str(self.plan.argon2_memory_kib)
        if self.plan.argon2_time_cost != DEFAULTS.argon2_time_cost:
            extra["AUTHGATE_ARGON2_TIME_COST"] = str(self.plan.argon2_time_cost)
        return authgate_env(data_dir, self.signing_key, database_url, extra)

    def _authgate(self, name: str, database_url: str | None) -> tuple[Server, Path]:
        data_dir = self.workdir / name
        env = self._env(data_dir, database_url)
        migrate(env, self.workdir)
        return start_authgate(env, self.workdir, workers=self.workers, name=name), data_dir

    # -- the run -----------------------------------------------------------

    def run(self) -> Report:
        plan = self.plan
        verify = seed.argon2_verify_seconds(
            memory_kib=plan.argon2_memory_kib,
            time_cost=plan.argon2_time_cost,
            parallelism=DEFAULTS.argon2_parallelism,
            samples=3 if plan.quick else 15,
        )
        bound = self.workers / verify
        self.report.context.append(
            f"argon2id verify at the server's cost (m={plan.argon2_memory_kib} KiB, "
            f"t={plan.argon2_time_cost}, p={DEFAULTS.argon2_parallelism}): "
            f"{verify * 1000:.1f} ms, so workers / verify time = {bound:.1f} sign-ins/s"
        )
        self.report.context.append(
            f"wrk: {THREADS} threads; {GET_CONNECTIONS} connections for GETs, "
            f"{SIGN_IN_CONNECTIONS} for sign-in, {REFRESH_CONNECTIONS} for refresh; "
            f"{self.plan.duration_seconds} s per run; the four GET scenarios are the median of "
            f"{self.plan.rounds} interleaved rounds of {self.plan.round_seconds} s each"
        )
        with start_baseline(self.workdir, workers=self.workers) as baseline:
            sqlite = self._sqlite(baseline, bound)
        postgres = self._postgres(bound) if self.plan.postgres_url else None
        self._finish_targets(sqlite, postgres)
        return self.report

    def _sqlite(self, baseline: Server, bound: float) -> dict[str, Result]:
        server, data_dir = self._authgate("sqlite", None)
        with server:
            accounts = seed.sign_up(server.base_url, USERS)
            token = seed.access_token(server.base_url, accounts)
            found = self._gets(baseline, server, accounts, token)
            self._memory_bound(server, accounts, found["unique"])
            found.update(self._sign_in(server, accounts, "SQLite", bound, probe=token))
            found.update(
                self._refresh(
                    server, accounts, "SQLite", lambda: self._seed_sqlite(data_dir, accounts)
                )
            )
            self.report.memory.append(
                MemoryRow(
                    "peak (VmHWM) after every scenario", "SQLite", _mib(server.memory(), True)
                )
            )
        return found

    def _postgres(self, bound: float) -> dict[str, Result]:
        with seed.postgres_database(self.plan.postgres_url) as url:
            server, _ = self._authgate("postgres", url)
            with server:
                accounts = seed.sign_up(server.base_url, USERS)
                found = self._sign_in(server, accounts, "PostgreSQL", bound)
                found.update(
                    self._refresh(
                        server,
                        accounts,
                        "PostgreSQL",
                        lambda: seed.seed_postgres(url, accounts.user_id, self.plan.stored_tokens),
                        raw_url=url,
                    )
                )
                self.report.memory.append(
                    MemoryRow(
                        "peak (VmHWM) after every scenario",
                        "PostgreSQL",
                        _mib(server.memory(), True),
                    )
                )
        return found

    # -- GET scenarios -----------------------------------------------------

    def _gets(
        self, baseline: Server, server: Server, accounts: seed.Accounts, token: str
    ) -> dict[str, Result]:
        unique_count = 2 * self.plan.cache_size * self.workers
        tokens = seed.mint_access_tokens(
            token, self.signing_key, unique_count, self._file("unique")
        )
        header = [f"x-access-token: {token}"]
        seconds = self.plan.round_seconds
        scenarios: dict[str, Callable[[], Load]] = {
            "baseline": lambda: self._load(baseline, "/api/test/all", duration=seconds),
            "public": lambda: self._load(server, "/api/test/all", duration=seconds),
            "reused": lambda: self._load(
                server, "/api/test/user", headers=header, duration=seconds
            ),
            "unique": lambda: self._load(
                server,
                "/api/test/user",
                "unique_tokens",
                duration=seconds,
                args=[str(tokens), str(THREADS)],
            ),
        }
        for warm_up in (baseline, server):  # first requests import and allocate; not measured
            self._load(warm_up, "/api/test/all", duration=1).result()
        runs: dict[str, list[Result]] = {name: [] for name in scenarios}
        for _ in range(self.plan.rounds):
            for name, start in scenarios.items():
                runs[name].append(start().result())
        found = {name: _median(results) for name, results in runs.items()}
        base = found["baseline"]
        rows = [
            ("baseline: Starlette on Granian, GET /api/test/all", "baseline"),
            ("public GET /api/test/all", "public"),
            ("protected GET /api/test/user, one token reused", "reused"),
            (f"protected, unique tokens ({unique_count:,} cycled; cache never hits)", "unique"),
        ]
        for label, name in rows:
            ratio = _ratio(found[name], base)
            note = "" if name == "baseline" else f"{ratio:.2f} x baseline" if ratio else ""
            self._add(Row(label, "-", found[name], note))
        for name, label, required in (
            ("public", "public GET /api/test/all", 0.9),
            ("reused", "protected, reused token", 0.85),
            ("unique", "protected, unique tokens", 0.3),
        ):
            self.report.targets.append(
                Target(
                    f"{label} / baseline",
                    required,
                    _ratio(found[name], base),
                    f"{found[name].rate:,.0f} / {base.rate:,.0f} req/s",
                    clean=_clean(found[name], base),
                )
            )
        return found

    def _memory_bound(self, server: Server, accounts: seed.Accounts, unique: Result) -> None:
        """Worker memory as distinct tokens pile up far past the cache size.

        Sampled after 2x (the unique-token scenario), 7x and 12x the cache size in distinct
        tokens per worker; bounded means no growth between the last two samples, when the
        cache has long been full and turned over.
        """
        cache = self.plan.cache_size
        samples = [(2, server.memory())]
        clean = True
        for multiple in (7, 12):
            count = 5 * cache * self.workers
            template = seed.access_token(server.base_url, accounts)
            tokens = seed.mint_access_tokens(
                template, self.signing_key, count, self._file("memory")
            )
            # Long enough that every token is presented at least once.
            seconds = max(self.plan.round_seconds, math.ceil(1.3 * count / max(unique.rate, 1)))
            result = self._load(
                server,
                "/api/test/user",
                "unique_tokens",
                duration=seconds,
                args=[str(tokens), str(THREADS)],
            ).result()
            clean = clean and result.clean
            self._add(Row(f"protected, {count:,} more distinct tokens (memory check)", "-", result))
            samples.append((multiple, server.memory()))
        self.report.memory += [
            MemoryRow(
                f"RSS after {multiple * cache:,} distinct tokens per worker", "SQLite", _mib(memory)
            )
            for multiple, memory in samples
        ]
        (_, middle), (_, last) = samples[-2:]
        earlier = {m.pid: m.rss_kib for m in middle}
        growth = max(
            (m.rss_kib - earlier[m.pid]) / earlier[m.pid] for m in last if m.pid in earlier
        )
        grown_mib = max((m.rss_kib - earlier.get(m.pid, m.rss_kib)) / 1024 for m in last)
        self.report.targets.append(
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

    # -- sign-in -----------------------------------------------------------

    def _sign_in(
        self,
        server: Server,
        accounts: seed.Accounts,
        backend: str,
        bound: float,
        *,
        probe: str | None = None,
    ) -> dict[str, Result]:
        def sign_in(duration: int | None = None) -> Load:
            return self._load(
                server,
                "/api/auth/signin",
                "sign_in",
                connections=SIGN_IN_CONNECTIONS,
                duration=duration,
                args=[str(accounts.count), accounts.password],
            )

        found = {"sign_in": sign_in().result()}
        result = found["sign_in"]
        self._add(
            Row(
                f"sign-in, {SIGN_IN_CONNECTIONS} connections",
                backend,
                result,
                f"{result.rate / bound:.2f} x workers / verify time",
            )
        )
        self.report.targets.append(
            Target(
                f"sign-in ({backend}) / (workers / argon2 verify time)",
                0.8,
                result.rate / bound,
                f"{result.rate:,.1f} / {bound:,.1f} sign-ins/s",
                clean=result.clean,
            )
        )
        if probe is not None:
            found.update(self._probe(server, probe, sign_in))
        return found

    def _probe(
        self, server: Server, token: str, sign_in: Callable[[int | None], Load]
    ) -> dict[str, Result]:
        """GET /api/test/user on one connection, idle and while 32 connections sign in."""

        def probe() -> Load:
            return self._load(
                server, "/api/test/user", connections=1, headers=[f"x-access-token: {token}"]
            )

        idle = probe().result()
        burst = sign_in(self.plan.duration_seconds + 2)
        time.sleep(1)  # let the burst reach full speed before probing
        during = probe().result()
        burst_result = burst.result()
        self._add(Row("probe: GET /api/test/user, 1 connection, idle", "SQLite", idle))
        self._add(
            Row(
                f"probe: same, while {SIGN_IN_CONNECTIONS} connections sign in",
                "SQLite",
                during,
                f"p99 {_ratio_of(during.p99_ms, idle.p99_ms)} x idle",
            )
        )
        self._add(Row("sign-in, during the probe", "SQLite", burst_result))
        self.report.targets.append(
            Target(
                "probe p99 during the sign-in burst / idle p99",
                2.0,
                (during.p99_ms or 0) / idle.p99_ms if idle.p99_ms else None,
                f"{_ms(during.p99_ms)} / {_ms(idle.p99_ms)} ms",
                clean=_clean(idle, during, burst_result),
                ceiling=True,
            )
        )
        return {"probe_idle": idle, "probe_during": during}

    # -- refresh -----------------------------------------------------------

    def _refresh(
        self,
        server: Server,
        accounts: seed.Accounts,
        backend: str,
        store: Callable[[], None],
        *,
        raw_url: str | None = None,
    ) -> dict[str, Result]:
        def refresh(duration: int | None = None) -> Result:
            tokens = seed.refresh_tokens(server.base_url, accounts, 2 * REFRESH_CONNECTIONS)
            path = seed.write_lines(tokens, self._file("refresh"))
            return self._load(
                server,
                "/api/auth/refreshtoken",
                "refresh",
                connections=REFRESH_CONNECTIONS,
                duration=duration,
                args=[str(path), str(THREADS)],
            ).result()

        if not self.plan.quick:
            refresh(2)  # the pool's connections and the prepared statements; not measured
        empty = refresh()
        self._add(Row("refresh with rotation", backend, empty))
        found = {f"refresh_{backend}": empty}
        if raw_url is not None:
            raw = self._raw_rotation(raw_url)
            self._add(
                Row(
                    f"raw asyncpg rotation loop, concurrency {REFRESH_CONNECTIONS} (no HTTP)",
                    backend,
                    raw,
                    f"authgate refresh = {_ratio_of(empty.rate, raw.rate)} x this",
                )
            )
            self.report.targets.append(
                Target(
                    "refresh (PostgreSQL) / raw asyncpg rotation",
                    0.5,
                    _ratio(empty, raw),
                    f"{empty.rate:,.0f} / {raw.rate:,.0f} rotations/s",
                    clean=empty.clean,
                )
            )
        started = time.monotonic()
        store()
        seeded_seconds = time.monotonic() - started
        stored = self.plan.stored_tokens
        full = refresh()
        self._add(
            Row(
                f"refresh with rotation, {stored:,} stored tokens",
                backend,
                full,
                f"{_ratio_of(full.rate, empty.rate)} x empty table; "
                f"rows written in {seeded_seconds:.0f} s",
            )
        )
        self.report.targets.append(
            Target(
                f"refresh with {stored:,} stored tokens / empty table ({backend})",
                0.9,
                _ratio(full, empty),
                f"{full.rate:,.0f} / {empty.rate:,.0f} req/s",
                clean=_clean(full, empty),
            )
        )
        found[f"refresh_full_{backend}"] = full
        return found

    def _seed_sqlite(self, data_dir: Path, accounts: seed.Accounts) -> None:
        seed.seed_sqlite(data_dir / "authgate.db", accounts.user_id, self.plan.stored_tokens)

    def _raw_rotation(self, url: str) -> Result:
        """benchmarks/raw_rotation.py in one process per worker, sharing the concurrency."""
        start_at = time.time() + (
            1 if self.plan.quick else 3
        )  # after every process has connected and set up its chains
        processes = [
            subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [
                    *(sys.executable, str(HERE / "raw_rotation.py"), "--url", url),
                    *("--concurrency", str(REFRESH_CONNECTIONS // self.workers)),
                    *("--duration", str(self.plan.duration_seconds)),
                    *("--start-at", str(start_at)),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(self.workers)
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

    def _finish_targets(
        self, sqlite: dict[str, Result], postgres: dict[str, Result] | None
    ) -> None:
        """Mark PostgreSQL's targets "not run" without a URL; order targets as the issue does."""
        if postgres is None:
            self.report.targets += [
                Target(
                    "sign-in (PostgreSQL) / (workers / argon2 verify time)",
                    0.8,
                    None,
                    "no PostgreSQL URL",
                ),
                Target(
                    "refresh (PostgreSQL) / raw asyncpg rotation", 0.5, None, "no PostgreSQL URL"
                ),
                Target(
                    "refresh with stored tokens / empty table (PostgreSQL)",
                    0.9,
                    None,
                    "no PostgreSQL URL",
                ),
            ]
        order = [
            "public",
            "reused",
            "unique",
            "sign-in (SQLite)",
            "sign-in (PostgreSQL)",
            "probe",
            "worker memory",
            "refresh (PostgreSQL)",
            "(SQLite)",
            "(PostgreSQL)",
        ]

        def rank(target: Target) -> int:
            return next((i for i, key in enumerate(order) if key in target.name), len(order))

        self.report.targets.sort(key=rank)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _ratio_of(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}"


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
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    ensure_wrk()
    if args.quick:
        # Cheap hashing too: the smoke run checks that everything runs, not how fast.
        plan = Plan(1, 1, 1, 2_000, 100, args.postgres_url, 1024, 1)
        workers = args.workers or [1]
    else:
        plan = Plan(
            duration_seconds=args.duration,
            rounds=args.rounds,
            round_seconds=max(1, args.duration // 2),
            stored_tokens=args.stored_tokens,
            cache_size=DEFAULTS.token_cache_size,
            postgres_url=args.postgres_url,
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
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(
        "\n".join(
            f"- {line}" if not line.startswith("  ") else f"  - {line.strip()}" for line in header
        )
        + "\n\n"
        + "\n".join(render(report, markdown=True) for report in reports)
    )
    print(f"bench: markdown written to {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
