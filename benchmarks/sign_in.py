"""Sign-in and sign-up at the server's argon2id cost, and a probe: does signing in delay
other requests, beyond what busy cores do to any server (the control)?"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeAlias

import seed
from harness import Harness, all_clean, format_ms, format_ratio
from load import Load, Result
from plan import SIGN_IN_BOUND, SIGN_IN_CONNECTIONS
from report import Row, SignInFigure, Target
from servers import Server

SETTLE_SECONDS = 2
SignIn: TypeAlias = Callable[[int | None], Load]
#: A busy loop at the lowest priority, as the hash processes run.
_SPIN = """
import contextlib, os
with contextlib.suppress(AttributeError, OSError):
    os.setpriority(os.PRIO_PROCESS, 0, 19)
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
while True:
    pass
"""


def _sign_in(harness: Harness, server: Server, accounts: seed.Accounts) -> SignIn:
    def start(duration: int | None = None) -> Load:
        return harness.load(
            server,
            "/api/auth/signin",
            "sign_in",
            connections=SIGN_IN_CONNECTIONS,
            duration=duration,
            args=[str(accounts.count), accounts.password],
        )

    return start


def measure(
    harness: Harness, server: Server, accounts: seed.Accounts, backend: str, bound: float
) -> Result:
    """Sign-in against ``bound`` (``plan.sign_in_bound``)."""
    result = _sign_in(harness, server, accounts)(None).result()
    harness.add(
        Row(
            f"sign-in, {SIGN_IN_CONNECTIONS} connections",
            backend,
            result,
            f"{result.rate / bound:.2f} x {SIGN_IN_BOUND}",
        )
    )
    harness.report.targets.append(
        Target(
            f"sign-in ({backend}) / ({SIGN_IN_BOUND})",
            0.8,
            result.rate / bound,
            f"{result.rate:,.1f} / {bound:,.1f} sign-ins/s",
            clean=result.clean,
        )
    )
    harness.report.sign_ins.append(SignInFigure(backend, result.rate, bound))
    return result


def probe(
    harness: Harness, server: Server, accounts: seed.Accounts, token: str
) -> dict[str, Result]:
    """The probe with access token ``token``: does signing in delay other requests?"""
    return _probe(harness, server, token, _sign_in(harness, server, accounts))


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


def _median_p99(runs: list[Result]) -> Result:
    """The run of median p99 (its other figures come with it)."""
    return sorted(runs, key=lambda result: result.p99_ms or 0.0)[len(runs) // 2]


def _probe(harness: Harness, server: Server, token: str, sign_in: SignIn) -> dict[str, Result]:
    """GET /api/test/user on one connection: idle, while 32 connections sign in, and the
    control (idle, every core busy at the lowest priority); interleaved rounds, the median
    p99 of each."""
    plan = harness.plan
    seconds = plan.round_seconds
    settle = 0 if plan.quick else SETTLE_SECONDS

    def probe() -> Load:
        return harness.load(
            server,
            "/api/test/user",
            connections=1,
            duration=seconds,
            headers=[f"x-access-token: {token}"],
        )

    idles, durings, bursts, controls = [], [], [], []
    for _ in range(plan.rounds):
        # The sign-ins queued when the last burst ended are still being hashed: let them
        # finish, or "idle" would include the end of a burst.
        time.sleep(settle)
        idles.append(probe().result())
        burst = sign_in(seconds + 2)
        time.sleep(1)  # let the burst reach full speed before probing
        durings.append(probe().result())
        bursts.append(burst.result())
        time.sleep(settle)
        with _spinning_cores():
            controls.append(probe().result())
    idle, during, control = _median_p99(idles), _median_p99(durings), _median_p99(controls)
    burst_result = bursts[durings.index(during)]
    rounds = f"median p99 of {plan.rounds} interleaved round(s) of {seconds} s"
    harness.add(Row("probe: GET /api/test/user, 1 connection, idle", "SQLite", idle, rounds))
    harness.add(
        Row(
            f"probe: same, while {SIGN_IN_CONNECTIONS} connections sign in",
            "SQLite",
            during,
            f"p99 {format_ratio(during.p99_ms, idle.p99_ms)} x idle, "
            f"{format_ratio(during.p99_ms, control.p99_ms)} x control",
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
            "probe p99 during the sign-in burst / control p99",
            2.0,
            (during.p99_ms or 0) / control.p99_ms if control.p99_ms else None,
            f"{format_ms(during.p99_ms)} / {format_ms(control.p99_ms)} ms "
            f"(idle {format_ms(idle.p99_ms)} ms); {rounds}",
            clean=all_clean(*idles, *durings, *bursts, *controls),
            ceiling=True,
        )
    )
    return {"probe_idle": idle, "probe_during": during, "probe_control": control}


def measure_sign_up(
    harness: Harness, server: Server, backend: str, password: str, bound: float
) -> Result:
    """Sign-up with a new username on every request, against ``bound`` (a hash costs what
    a verify does)."""
    result = harness.load(
        server,
        "/api/auth/signup",
        "sign_up",
        connections=SIGN_IN_CONNECTIONS,
        args=[f"su{secrets.token_hex(4)}", password],
    ).result()
    harness.add(
        Row(
            f"sign-up, {SIGN_IN_CONNECTIONS} connections, a new username each",
            backend,
            result,
            f"{result.rate / bound:.2f} x {SIGN_IN_BOUND}",
        )
    )
    return result
