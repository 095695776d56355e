"""Server processes under test: authgate and the baseline, each on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0

#: Load tests would trip every rate limit in a second; raise all five past reach.
UNLIMITED = {
    "AUTHGATE_RATE_LIMIT_SIGN_IN_PER_ADDRESS": "1000000/minute",
    "AUTHGATE_RATE_LIMIT_SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS": "1000000/minute",
    "AUTHGATE_RATE_LIMIT_SIGN_IN_FAILURES_PER_ACCOUNT": "1000000/minute",
    "AUTHGATE_RATE_LIMIT_SIGN_UP_PER_ADDRESS": "1000000/minute",
    "AUTHGATE_RATE_LIMIT_REFRESH_PER_ADDRESS": "1000000/minute",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Memory:
    """One worker process's resident memory, from ``/proc/PID/status``."""

    pid: int
    rss_kib: int
    peak_kib: int  # VmHWM: the high-water mark of the resident set


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return sorted(found)


def memory(pid: int) -> Memory:
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])  # always in kB
    return Memory(pid=pid, rss_kib=values["VmRSS"], peak_kib=values["VmHWM"])


class Server:
    """A server process in its own process group, its output kept in ``log``."""

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], workdir: Path
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"{name}.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [*command, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=workdir,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def url(self, path: str) -> str:
        return self.base_url + path

    def wait_until_ready(self, workers: int) -> None:
        """Until ``/api/test/all`` answers and every worker process is up."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text(errors='replace')}")
            try:
                answer = httpx.get(self.url("/api/test/all"), timeout=1, trust_env=False)
            except httpx.TransportError:
                pass
            else:
                if answer.status_code == 200 and len(self.workers()) >= workers:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log.read_text(errors='replace')}")

    def workers(self) -> list[int]:
        """Granian's worker processes: the server process's children."""
        return children(self.process.pid)

    def memory(self) -> list[Memory]:
        return [memory(pid) for pid in self.workers()]

    def stop(self) -> None:
        """SIGINT (graceful), then SIGKILL to the group this server started."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def authgate_env(
    data_dir: Path, signing_key: str, database_url: str | None, extra: Mapping[str, str]
) -> dict[str, str]:
    """This environment without any ``AUTHGATE_*``, plus the benchmark's settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHGATE_")}
    env.update(UNLIMITED)
    env.update({"AUTHGATE_DATA_DIR": str(data_dir), "AUTHGATE_SIGNING_KEY": signing_key})
    if database_url:
        env["AUTHGATE_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def migrate(env: Mapping[str, str], workdir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "authgate.cli", "migrate"],
        cwd=workdir,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"authgate migrate failed:\n{done.stdout}{done.stderr}")


def start_authgate(
    env: Mapping[str, str], workdir: Path, *, workers: int, name: str = "authgate"
) -> Server:
    command = [sys.executable, "-m", "authgate.cli", "serve", "--server", "granian"]
    return _started(Server(name, [*command, "--workers", str(workers)], env, workdir), workers)


def start_baseline(workdir: Path, *, workers: int) -> Server:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTHGATE_")}
    command = [sys.executable, str(HERE / "baseline_app.py"), "--workers", str(workers)]
    return _started(Server("baseline", command, env, workdir), workers)


def _started(server: Server, workers: int) -> Server:
    """``server`` once it answers with all its workers; stopped if it never does."""
    try:
        server.wait_until_ready(workers)
    except BaseException:
        server.stop()
        raise
    return server
