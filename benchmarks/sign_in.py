"""Sign-in at the server's argon2id cost, and a probe: does hashing stall the event loop?"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import seed
from harness import Harness, all_clean, format_ms, format_ratio
from load import Load, Result
from plan import SIGN_IN_CONNECTIONS
from report import Row, Target
from servers import Server

SETTLE_SECONDS = 2
#: A busy loop at the lowest priority, as the hash processes run.
_SPIN = """
import contextlib, os
with contextlib.suppress(AttributeError, OSError):
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
while True:
    pass
"""


def measure(
    harness: Harness,
    server: Server,
    accounts: seed.Accounts,
    backend: str,
    bound: float,
    *,
    probe: str | None = None,
) -> dict[str, Result]:
    """Sign-in against ``bound`` (workers / verify time); then the probe with token ``probe``."""

    def sign_in(duration: int | None = None) -> Load:
        return harness.load(
            server,
            "/api/auth/signin",
            "sign_in",
            connections=SIGN_IN_CONNECTIONS,
            duration=duration,
            args=[str(accounts.count), accounts.password],
        )

    found = {"sign_in": sign_in().result()}
    result = found["sign_in"]
    harness.add(
        Row(
            f"sign-in, {SIGN_IN_CONNECTIONS} connections",
            backend,
            result,
            f"{result.rate / bound:.2f} x workers / verify time",
        )
    )
    harness.report.targets.append(
        Target(
            f"sign-in ({backend}) / (workers / argon2 verify time)",
            0.8,
            result.rate / bound,
            f"{result.rate:,.1f} / {bound:,.1f} sign-ins/s",
            clean=result.clean,
        )
    )
    if probe is not None:
        found.update(_probe(harness, server, probe, sign_in))
    return found


@contextlib.contextmanager
def _spinning_cores() -> Iterator[None]:
    """One busy loop per core, as hashing is scheduled (SCHED_IDLE where Linux has it)."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", _SPIN])  # noqa: S603 - our interpreter
        for _ in range(os.cpu_count() or 1)
    ]
    try:
        time.sleep(0.5)
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _probe(
    harness: Harness, server: Server, token: str, sign_in: Callable[[int | None], Load]
) -> dict[str, Result]:
    """GET /api/test/user on one connection, idle and while 32 connections sign in."""

    def probe() -> Load:
        return harness.load(
            server, "/api/test/user", connections=1, headers=[f"x-access-token: {token}"]
        )

    # The sign-ins queued when the last burst ended are still being hashed: let them finish,
    # or "idle" would include the end of a burst.
    time.sleep(0 if harness.plan.quick else SETTLE_SECONDS)
    idle = probe().result()
    burst = sign_in(harness.plan.duration_seconds + 2)
    time.sleep(1)  # let the burst reach full speed before probing
    during = probe().result()
    burst_result = burst.result()
    time.sleep(0 if harness.plan.quick else SETTLE_SECONDS)
    with _spinning_cores():
        control = probe().result()
    harness.add(Row("probe: GET /api/test/user, 1 connection, idle", "SQLite", idle))
    harness.add(
        Row(
            f"probe: same, while {SIGN_IN_CONNECTIONS} connections sign in",
            "SQLite",
            during,
            f"p99 {format_ratio(during.p99_ms, idle.p99_ms)} x idle",
        )
    )
    harness.add(Row("sign-in, during the probe", "SQLite", burst_result))
    harness.add(
        Row(
            "control: the idle probe while every core spins at the lowest priority (no sign-ins)",
            "SQLite",
            control,
            f"p99 {format_ratio(control.p99_ms, idle.p99_ms)} x idle: this machine, not authgate",
        )
    )
    harness.report.targets.append(
        Target(
            "probe p99 during the sign-in burst / idle p99",
            2.0,
            (during.p99_ms or 0) / idle.p99_ms if idle.p99_ms else None,
            f"{format_ms(during.p99_ms)} / {format_ms(idle.p99_ms)} ms",
            clean=all_clean(idle, during, burst_result),
            ceiling=True,
        )
    )
    return {"probe_idle": idle, "probe_during": during}
