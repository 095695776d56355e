"""One worker count's run: the servers, the scenarios in order, the targets in the issue's order.

Starts the baseline and authgate on SQLite, then authgate on PostgreSQL when the plan has a
URL, and hands each server to the scenario modules (``gets``, ``sign_in``, ``refresh``).
"""

from __future__ import annotations

from pathlib import Path

import gets
import refresh
import seed
import sign_in
from harness import Harness, mib
from load import Result
from plan import (
    DEFAULTS,
    GET_CONNECTIONS,
    REFRESH_CONNECTIONS,
    SIGN_IN_CONNECTIONS,
    THREADS,
    USERS,
    Plan,
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
            found = gets.measure(self.harness, baseline, server, accounts, token)
            gets.measure_memory(self.harness, server, accounts, found["unique"])
            found.update(
                sign_in.measure(self.harness, server, accounts, "SQLite", bound, probe=token)
            )
            found.update(
                refresh.measure(
                    self.harness,
                    server,
                    accounts,
                    "SQLite",
                    lambda: self._seed_sqlite(data_dir, accounts),
                )
            )
            self.report.memory.append(
                MemoryRow("peak (VmHWM) after every scenario", "SQLite", mib(server.memory(), True))
            )
        return found

    def _postgres(self, bound: float) -> dict[str, Result]:
        with seed.postgres_database(self.plan.postgres_url) as url:
            server, _ = self._authgate("postgres", url)
            with server:
                accounts = seed.sign_up(server.base_url, USERS)
                found = sign_in.measure(self.harness, server, accounts, "PostgreSQL", bound)
                found.update(
                    refresh.measure(
                        self.harness,
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
                        mib(server.memory(), True),
                    )
                )
        return found

    def _seed_sqlite(self, data_dir: Path, accounts: seed.Accounts) -> None:
        seed.seed_sqlite(data_dir / "authgate.db", accounts.user_id, self.plan.stored_tokens)

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
