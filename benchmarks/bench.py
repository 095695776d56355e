"""One worker count's run: the servers, the scenarios in order, the targets in the issue's order.

Starts the baseline and authgate on SQLite, then authgate on PostgreSQL when the plan has a
URL, and hands each server to the scenario modules (``gets``, ``sign_in``, ``refresh``); a
second authgate on the same database, with rotation off, for the refresh that re-sends one
token. Then compares SQLite with PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import gets
import refresh
import router
import seed
import sign_in
from harness import Harness, all_clean, mib, rate_ratio
from load import Result
from plan import (
    DEFAULTS,
    GET_CONNECTIONS,
    REFRESH_CONNECTIONS,
    SCENARIOS,
    SIGN_IN_BOUND,
    SIGN_IN_CONNECTIONS,
    THREADS,
    USERS,
    Plan,
    sign_in_bound,
)
from report import MemoryRow, Report, Target
from servers import Server, authgate_env, migrate, start_authgate, start_baseline


class Bench:
    """One worker count: the baseline, authgate on SQLite, and on PostgreSQL if configured."""

    def __init__(self, plan: Plan, workers: int, workdir: Path) -> None:
        self.plan = plan
        self.workers = workers
        self.workdir = workdir
        self.harness = Harness(plan, workers, workdir)
        self.report = self.harness.report

    def _env(self, data_dir: Path, database_url: str | None) -> dict[str, str]:
        extra = {}
        if self.plan.cache_size != DEFAULTS.token_cache_size:
            extra["AUTHGATE_TOKEN_CACHE_SIZE"] = str(self.plan.cache_size)
        if self.plan.argon2_memory_kib != DEFAULTS.argon2_memory_kib:
            extra["AUTHGATE_ARGON2_MEMORY_KIB"] = str(self.plan.argon2_memory_kib)
        if self.plan.argon2_time_cost != DEFAULTS.argon2_time_cost:
            extra["AUTHGATE_ARGON2_TIME_COST"] = str(self.plan.argon2_time_cost)
        return authgate_env(data_dir, self.harness.signing_key, database_url, extra)

    def _authgate(self, name: str, database_url: str | None) -> tuple[Server, Path]:
        data_dir = self.workdir / name
        env = self._env(data_dir, database_url)
        migrate(env, self.workdir)
        return start_authgate(env, self.workdir, workers=self.workers, name=name), data_dir

    def _without_rotation(
        self, name: str, data_dir: Path, database_url: str | None
    ) -> Callable[[], AbstractContextManager[Server]] | None:
        """Another authgate on the same database that does not rotate refresh tokens."""
        if not self.plan.runs("no-rotation"):
            return None

        def start() -> Server:
            env = self._env(data_dir, database_url)
            env["AUTHGATE_REFRESH_ROTATION"] = "false"
            return start_authgate(
                env, self.workdir, workers=self.workers, name=f"{name}-no-rotation"
            )

        return start

    def run(self) -> Report:
        plan = self.plan
        verify = seed.argon2_verify_seconds(
            memory_kib=plan.argon2_memory_kib,
            time_cost=plan.argon2_time_cost,
            parallelism=DEFAULTS.argon2_parallelism,
            samples=3 if plan.quick else 15,
        )
        bound = sign_in_bound(self.workers, verify)
        self.report.context.append(
            f"argon2id verify at the server's cost (m={plan.argon2_memory_kib} KiB, "
            f"t={plan.argon2_time_cost}, p={DEFAULTS.argon2_parallelism}): "
            f"{verify * 1000:.1f} ms, so {SIGN_IN_BOUND} = {bound:.1f} sign-ins/s"
        )
        self.report.context.append(
            f"wrk: {THREADS} threads; {GET_CONNECTIONS} connections for GETs, "
            f"{SIGN_IN_CONNECTIONS} for sign-in and sign-up, {REFRESH_CONNECTIONS} for refresh; "
            f"{plan.duration_seconds} s per run; the four GET scenarios are the median of "
            f"{plan.rounds} interleaved rounds of {plan.round_seconds} s each, the probe the "
            f"median p99 of {plan.rounds} interleaved rounds (idle, burst, control)"
        )
        if plan.only != frozenset(SCENARIOS):
            self.report.context.append(f"only: {', '.join(sorted(plan.only))}")
        if plan.runs("gets"):
            with start_baseline(self.workdir, workers=self.workers) as baseline:
                sqlite = self._sqlite(baseline, bound)
        else:
            sqlite = self._sqlite(None, bound)
        postgres = self._postgres(bound) if plan.postgres_url else None
        self._compare(sqlite, postgres)
        if plan.runs("router"):
            router.measure(self.harness)
        self._finish_targets()
        return self.report

    def _sqlite(self, baseline: Server | None, bound: float) -> dict[str, Result]:
        server, data_dir = self._authgate("sqlite", None)
        database = data_dir / "authgate.db"
        with server:
            accounts = seed.sign_up(server.base_url, USERS)
            token = seed.access_token(server.base_url, accounts)
            if baseline is not None:
                measured = gets.measure(self.harness, baseline, server, accounts, token)
                gets.measure_memory(self.harness, server, accounts, measured["unique"])
            found = self._scenarios(
                server,
                accounts,
                bound,
                refresh.Refresh(
                    "SQLite",
                    lambda: seed.seed_sqlite(database, accounts.user_id, self.plan.stored_tokens),
                    refresh.sqlite_floor(self.harness, database),
                    self._without_rotation("sqlite", data_dir, None),
                ),
                probe=token,
            )
            self.report.memory.append(
                MemoryRow("peak (VmHWM) after every scenario", "SQLite", mib(server.memory(), True))
            )
        return found

    def _postgres(self, bound: float) -> dict[str, Result]:
        with seed.postgres_database(self.plan.postgres_url) as url:
            server, data_dir = self._authgate("postgres", url)
            with server:
                accounts = seed.sign_up(server.base_url, USERS)
                found = self._scenarios(
                    server,
                    accounts,
                    bound,
                    refresh.Refresh(
                        "PostgreSQL",
                        lambda: seed.seed_postgres(url, accounts.user_id, self.plan.stored_tokens),
                        refresh.asyncpg_floor(self.harness, url),
                        self._without_rotation("postgres", data_dir, url),
                    ),
                )
                self.report.memory.append(
                    MemoryRow(
                        "peak (VmHWM) after every scenario",
                        "PostgreSQL",
                        mib(server.memory(), True),
                    )
                )
        return found

    def _scenarios(
        self,
        server: Server,
        accounts: seed.Accounts,
        bound: float,
        refreshing: refresh.Refresh,
        *,
        probe: str | None = None,
    ) -> dict[str, Result]:
        """Sign-in, the probe (with access token ``probe``), sign-up, refresh: those the plan
        runs, in that order."""
        plan, backend = self.plan, refreshing.backend
        found: dict[str, Result] = {}
        if plan.runs("sign-in"):
            found["sign_in"] = sign_in.measure(self.harness, server, accounts, backend, bound)
        if probe is not None and plan.runs("probe"):
            found.update(sign_in.probe(self.harness, server, accounts, probe))
        if plan.runs("sign-up"):
            found["sign_up"] = sign_in.measure_sign_up(
                self.harness, server, backend, accounts.password, bound
            )
        if plan.runs("refresh", "no-rotation", "stored"):
            if not plan.runs("refresh"):
                refreshing = dataclasses.replace(refreshing, floor=None)
            found.update(
                refresh.measure(
                    self.harness, server, accounts, refreshing, stored=plan.runs("stored")
                )
            )
        return found

    def _compare(self, sqlite: dict[str, Result], postgres: dict[str, Result] | None) -> None:
        """SQLite against PostgreSQL, same run: the embedded default must not be the slowest."""
        stored = f"refresh with {self.plan.stored_tokens:,} stored tokens"
        for key, name, group in (
            ("sign_in", "sign-in", "sign-in"),
            ("sign_up", "sign-up", "sign-up"),
            ("refresh", "refresh", "refresh"),
            ("refresh_full", stored, "stored"),
        ):
            if not self.plan.runs(group):
                continue
            title = f"{name}, SQLite / PostgreSQL"
            if postgres is None:
                self.report.targets.append(Target(title, 1.0, None, "no PostgreSQL URL"))
                continue
            mine, theirs = sqlite.get(key), postgres.get(key)
            self.report.targets.append(
                Target(
                    title,
                    1.0,
                    rate_ratio(mine, theirs),
                    f"{mine.rate if mine else 0:,.1f} / {theirs.rate if theirs else 0:,.1f} req/s",
                    clean=all_clean(mine, theirs),
                )
            )

    def _finish_targets(self) -> None:
        """Mark PostgreSQL's own targets "not run" without a URL; order targets as the issue
        does."""
        if not self.plan.postgres_url:
            stored = f"refresh with {self.plan.stored_tokens:,} stored tokens"
            for group, name, required in (
                ("sign-in", f"sign-in (PostgreSQL) / ({SIGN_IN_BOUND})", 0.8),
                ("refresh", "refresh (PostgreSQL) / raw asyncpg rotation", 0.5),
                ("stored", f"{stored} / empty table (PostgreSQL)", 0.9),
                ("no-rotation", "refresh, rotation off / rotation on (PostgreSQL)", 1.0),
            ):
                if self.plan.runs(group):
                    self.report.targets.append(Target(name, required, None, "no PostgreSQL URL"))
        order = [
            "public",
            "reused",
            "unique",
            "sign-in (SQLite)",
            "sign-in (PostgreSQL)",
            "sign-in, SQLite",
            "sign-up, SQLite",
            "probe",
            "worker memory",
            "refresh (PostgreSQL) / raw",
            "refresh (SQLite) / raw",
            "(SQLite) / raw",
            "refresh, SQLite",
            "stored tokens, SQLite",
            "empty table (SQLite)",
            "empty table (PostgreSQL)",
            "rotation on (SQLite)",
            "rotation on (PostgreSQL)",
        ]

        def rank(target: Target) -> int:
            return next((i for i, key in enumerate(order) if key in target.name), len(order))

        self.report.targets.sort(key=rank)
