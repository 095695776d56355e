"""The load generator: wrk in its own process, driven by the Lua scripts in ``lua/``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
MARKER = "WRK-RESULT "
#: wrk gives up on an answer after this long and counts a timeout (a socket error).
TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Result:
    """What one load run measured; latencies in milliseconds."""

    requests: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx: int
    socket_errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0


def ensure_wrk() -> str:
    """The path of wrk, installing Debian's package first when it is missing and we can."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        print("bench: wrk is missing; installing Debian's package (apt-get install wrk)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        command = [apt, "install", "-y", "-q", "wrk"]
        if subprocess.run(command, env=env, check=False).returncode != 0:  # noqa: S603
            subprocess.run([apt, "update", "-q"], env=env, check=True)  # noqa: S603
            subprocess.run(command, env=env, check=True)  # noqa: S603
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(
        "bench: the load generator wrk is not installed. On Debian or Ubuntu, as root: "
        "apt-get install wrk (or run `make bench` as root, which installs it)."
    )


def _script(name: str, workdir: Path) -> Path:
    """``common.lua`` followed by the scenario's script, as one file for ``wrk -s``."""
    path = workdir / f"wrk-{name}.lua"
    if not path.exists():
        path.write_text((LUA / "common.lua").read_text() + "\n" + (LUA / f"{name}.lua").read_text())
    return path


class Load:
    """One wrk run in the background; :meth:`result` waits for it and parses its report."""

    def __init__(
        self,
        url: str,
        *,
        script: str,
        workdir: Path,
        connections: int,
        duration_seconds: int,
        threads: int = 2,
        headers: Sequence[str] = (),
        args: Sequence[str] = (),
    ) -> None:
        threads = max(1, min(threads, connections))
        command = [
            ensure_wrk(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_seconds}s",
            f"--timeout={TIMEOUT_SECONDS}s",
            "-s",
            str(_script(script, workdir)),
        ]
        for header in headers:
            command += ["-H", header]
        command += [url, "--", *args]
        self.command = command
        self.process = subprocess.Popen(  # noqa: S603 - wrk with our own arguments
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def result(self) -> Result:
        stdout, stderr = self.process.communicate()
        line = next((x for x in stdout.splitlines() if x.startswith(MARKER)), None)
        if self.process.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed: {' '.join(self.command)}\n{stdout}{stderr}")
        raw = json.loads(line[len(MARKER) :])
        requests = int(raw["requests"])
        return Result(
            requests=requests,
            seconds=raw["duration_us"] / 1e6,
            p50_ms=raw["p50_us"] / 1000 if requests else None,
            p99_ms=raw["p99_us"] / 1000 if requests else None,
            non_2xx=int(raw["non_2xx"]),
            socket_errors=int(raw["socket_errors"]),
        )
