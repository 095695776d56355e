"""What every scenario works with: the plan, the report, wrk runs, scratch files, figures.

One harness per worker count. The scenario modules (``gets``, ``sign_in``, ``refresh``) take
it and add their rows and targets to its report; ``bench`` builds it and starts the servers.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path

from load import Load, Result
from plan import GET_CONNECTIONS, THREADS, Plan
from report import Report, Row
from servers import Memory, Server


class Harness:
    """The plan, worker count, scratch directory, signing key and report of one run."""

    def __init__(self, plan: Plan, workers: int, workdir: Path) -> None:
        self.plan = plan
        self.workers = workers
        self.workdir = workdir
        # Given to authgate and used by the driver to mint access tokens the server accepts.
        self.signing_key = secrets.token_urlsafe(48)
        self.report = Report(workers=workers, title=f"{workers} worker(s)")
        self._files = 0

    def add(self, row: Row) -> None:
        """Keep ``row`` for the report and show progress at once."""
        self.report.rows.append(row)
        result = row.result
        figure = (
            "not run"
            if result is None
            else f"{result.rate:,.1f}/s p99 {format_ms(result.p99_ms)} ms"
        )
        print(f"  {row.scenario} [{row.backend}]: {figure}", flush=True)

    def file(self, stem: str) -> Path:
        """A fresh path in the scratch directory (numbered, so runs never share one)."""
        self._files += 1
        return self.workdir / f"{stem}-{self._files}.txt"

    def load(
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


def mib(memory: Sequence[Memory], peak: bool = False) -> list[float]:
    return [(m.peak_kib if peak else m.rss_kib) / 1024 for m in memory]


def median_run(runs: list[Result]) -> Result:
    """The run of median throughput (its latencies come with it)."""
    return sorted(runs, key=lambda result: result.rate)[len(runs) // 2]


def rate_ratio(numerator: Result | None, denominator: Result | None) -> float | None:
    """None when either side did not run; 0 when the denominator ran and completed nothing
    (a target then reads "NOT met" rather than "not run": the quick bench on a busy machine
    can finish no sign-up within its second)."""
    if numerator is None or denominator is None:
        return None
    if not denominator.rate:
        return 0.0
    return numerator.rate / denominator.rate


def all_clean(*results: Result | None) -> bool:
    return all(result is None or result.clean for result in results)


def format_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_ratio(numerator: float | None, denominator: float | None) -> str:
    if numerator is None or not denominator:
        return "-"
    return f"{numerator / denominator:.2f}"
