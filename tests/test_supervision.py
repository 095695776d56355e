"""``authgate serve`` as processes: dead workers are replaced, orphans stop, a busy port is
refused, command-line flags reach the workers, and a body that never comes is not waited for.

These read the process tree from ``/proc`` (Linux only), like an operator with ``ps``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.test_server import (
    Server,
    Servers,
    authgate_env,
    free_port,
    migrated,
    migrated_template,
    run_authgate,
    workdir,
)

__all__ = ["migrated", "migrated_template", "workdir"]  # fixtures, shared

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

#: Bounds on things that take a few seconds, generous for a machine busy with other work
#: (uvicorn's workers import authgate afresh: 20 s each was seen on two shared cores).
WITHIN_SECONDS = 90.0
SERVERS = ["granian", "uvicorn"]


# -- the process tree, from /proc --------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid), or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, parent = text.rpartition(")")[2].split()[:2]
    return state, int(parent)


def alive(pid: int) -> bool:
    found = _stat(pid)
    return found is not None and found[0] != "Z"  # a zombie serves nothing


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.append(int(entry.name))
    return sorted(found)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def hash_processes(pid: int) -> list[int]:
    return [child for child in children(pid) if "authgate.passwords" in command_line(child)]


def workers(main: int) -> list[int]:
    """The main process's workers (not uvicorn's multiprocessing resource tracker)."""
    return [child for child in children(main) if "resource_tracker" not in command_line(child)]


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    return inodes


def serving(pid: int, port: int) -> bool:
    """Started (its hash process is up) and holding a socket that listens on ``port``."""
    if not hash_processes(pid):
        return False
    listening = _listening_inodes(port)
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in listening:
            return True
    return False


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WITHIN_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WITHIN_SECONDS} s: {what}")
        time.sleep(0.1)


def serving_workers(server: Server, count: int, without: set[int]) -> list[int]:
    """Wait until ``count`` workers, none of them in ``without``, serve; their pids."""
    found: list[int] = []

    def ready() -> bool:
        nonlocal found
        found = [w for w in workers(server.process.pid) if w not in without]
        return len(found) == count and all(serving(w, server.port) for w in found)

    wait_for(ready, f"{count} workers serving besides {sorted(without)}")
    return found


def answers(port: int) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/api/test/all", timeout=5, trust_env=False)
    except httpx.TransportError:
        return False
    return response.status_code == 200


class PatientServers(Servers):
    """Servers given ``WITHIN_SECONDS`` to start, each worker included."""

    def start(self, env: Mapping[str, str], *args: str, port: int | None = None) -> Server:
        server = Server(self.workdir, env, *args, port=port)
        self._started.append(server)
        wait_for(
            lambda: server.process.poll() is not None or answers(server.port),
            f"authgate serve {' '.join(args)} answers",
        )
        assert server.process.poll() is None, server.output
        return server


@pytest.fixture
def servers(workdir: Path) -> Iterator[Servers]:
    started = PatientServers(workdir)
    try:
        yield started
    finally:
        started.stop_all()


# -- load -----------------------------------------------------------------------


@dataclass
class Load:
    """Threads asking for public content, a new connection each time (so every worker
    gets its share), counting what comes back."""

    base_url: str
    threads: int = 3
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.base_url, timeout=30, trust_env=False, limits=limits) as c:
            while not self._stop.is_set():
                try:
                    response = c.get("/api/test/all")
                    result = "" if response.status_code == 200 else str(response.status_code)
                except httpx.TransportError as error:
                    result = type(error).__name__
                with self._lock:
                    if result:
                        self.failed.append(result)
                    else:
                        self.ok += 1
                time.sleep(0.01)

    def answered(self) -> int:
        with self._lock:
            return self.ok


@contextlib.contextmanager
def load_on(server: Server) -> Iterator[Load]:
    load = Load(server.base_url)
    pool = [threading.Thread(target=load._run) for _ in range(load.threads)]
    for thread in pool:
        thread.start()
    try:
        yield load
    finally:
        load._stop.set()
        for thread in pool:
            thread.join()


# -- 1. a dead worker is replaced; a dead main process takes its workers along -------


@pytest.mark.parametrize("server_kind", SERVERS)
@pytest.mark.parametrize("count", [2, 1])
def test_a_killed_worker_is_replaced_while_the_others_answer(
    migrated: Path, servers: Servers, server_kind: str, count: int
) -> None:
    server = servers.start(authgate_env(migrated), "--server", server_kind, "--workers", str(count))
    original = serving_workers(server, count, without=set())
    hashers = [pid for worker in original for pid in hash_processes(worker)]
    killed: set[int] = set()
    with load_on(server) as load:
        # Kill each original worker in turn, each once the one before has been replaced:
        # with the last original gone, only replacements can be answering.
        for victim in original:
            os.kill(victim, signal.SIGKILL)
            killed.add(victim)
            serving_workers(server, count, without=killed)
        before = load.answered()
        wait_for(lambda: load.answered() > before + 10, "answers from the replacements")

    assert server.process.poll() is None, server.output  # the server lives on
    wait_for(lambda: not any(map(alive, hashers)), "the killed workers' hash processes gone")
    if count > 1:
        # Only requests in flight on a dying worker may fail: at most one per client
        # thread per kill, and only as a broken connection, never as an error answer.
        assert len(load.failed) <= load.threads * len(original), load.failed
        assert all(not failure.isdigit() for failure in load.failed), load.failed


@pytest.mark.parametrize("server_kind", SERVERS)
def test_killing_the_main_process_stops_its_workers(
    migrated: Path, servers: Servers, server_kind: str
) -> None:
    server = servers.start(authgate_env(migrated), "--server", server_kind, "--workers", "2")
    started = serving_workers(server, 2, without=set())
    hashers = [pid for worker in started for pid in hash_processes(worker)]
    assert hashers

    server.process.kill()  # SIGKILL: nothing of the main process gets to clean up
    server.process.wait()

    wait_for(lambda: not any(map(alive, started + hashers)), "workers and hash processes gone")
    wait_for(lambda: not answers(server.port), "the port stops answering")


# -- 2. a busy address is refused ----------------------------------------------------


def _holder(port: int, *, reuse_port: bool) -> socket.socket:
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuse_port:  # as Granian binds: a naive second server could share the port
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen()
    return holder


def _assert_refused(migrated: Path, port: int, *args: str) -> None:
    result = run_authgate(
        migrated, authgate_env(migrated), "serve", "--host", "127.0.0.1", "--port", str(port), *args
    )
    assert result.returncode == 3, result.output  # configuration
    assert result.stderr.strip().splitlines() == [
        f"authgate: 127.0.0.1:{port} is already in use; "
        "stop what listens there or choose another port."
    ]


@pytest.mark.parametrize("server_kind", SERVERS)
@pytest.mark.parametrize("count", ["1", "2"])
@pytest.mark.parametrize("reuse_port", [True, False], ids=["SO_REUSEPORT", "plain"])
def test_serve_refuses_a_port_that_a_socket_listens_on(
    migrated: Path, server_kind: str, count: str, reuse_port: bool
) -> None:
    port = free_port()
    with _holder(port, reuse_port=reuse_port):
        _assert_refused(migrated, port, "--server", server_kind, "--workers", count)


@pytest.mark.parametrize("server_kind", SERVERS)
def test_a_second_authgate_on_the_same_port_is_refused_and_the_first_keeps_it(
    migrated: Path, servers: Servers, server_kind: str
) -> None:
    first = servers.start(authgate_env(migrated), "--workers", "2")
    _assert_refused(migrated, first.port, "--server", server_kind)
    assert answers(first.port)


@pytest.mark.parametrize("server_kind", SERVERS)
def test_serve_refuses_tls_files_that_do_not_load_before_any_worker_starts(
    migrated: Path, server_kind: str
) -> None:
    """Else uvicorn's workers would each fail on them, and be replaced, without end."""
    (migrated / "broken.pem").write_text("not a certificate\n")
    env = authgate_env(
        migrated, {"AUTHGATE_TLS_CERT_FILE": "broken.pem", "AUTHGATE_TLS_KEY_FILE": "broken.pem"}
    )
    result = run_authgate(
        migrated, env, "serve", "--port", str(free_port()), "--server", server_kind
    )
    assert result.returncode == 3, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("authgate: AUTHGATE_TLS_CERT_FILE and AUTHGATE_TLS_KEY_FILE do not load")


# -- 7. command-line flags reach the workers -----------------------------------------


def test_workers_from_the_command_line_split_the_hash_processes(
    migrated: Path, servers: Servers
) -> None:
    """By default each of N workers hashes in at most CPUs/N processes, whatever
    AUTHGATE_WORKERS says: a worker that missed ``--workers 2`` would start CPUs of them."""
    cpus = os.cpu_count() or 1
    env = authgate_env(
        migrated,
        {
            "AUTHGATE_ARGON2_MEMORY_KIB": "8192",
            "AUTHGATE_RATE_LIMIT_SIGN_IN_PER_ADDRESS": "100000/minute",
            "AUTHGATE_RATE_LIMIT_SIGN_IN_FAILURES_PER_ACCOUNT": "100000/minute",
        },
    )
    server = servers.start(env, "--workers", "2")
    started = serving_workers(server, 2, without=set())

    def sign_in(attempt: int) -> int:
        body = {"username": f"nobody{attempt}", "password": "wrong password, every time"}
        with server.client(keep_alive=False) as client:
            return client.post("/api/auth/signin", json=body).status_code

    # Bursts of concurrent sign-ins (each verifies a hash), spread over both workers.
    with ThreadPoolExecutor(max_workers=4 * cpus) as pool:
        for burst in range(5):
            first = burst * 8 * cpus
            statuses = list(pool.map(sign_in, range(first, first + 8 * cpus)))
            assert set(statuses) == {401}, statuses

    per_worker = {worker: len(hash_processes(worker)) for worker in started}
    assert all(1 <= found <= max(1, cpus // 2) for found in per_worker.values()), per_worker


# -- 12. a body that never arrives ---------------------------------------------------


def _stalled_request(port: int, sent: bytes, *, drip_seconds: float | None) -> bytes:
    """Send headers promising 100 body bytes and ``sent`` of them, then nothing (or one
    byte now and then); everything the server answers until it closes."""
    head = (
        "POST /api/auth/signin HTTP/1.1\r\nHost: authgate\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=WITHIN_SECONDS) as client:
        client.sendall(head.encode() + sent)
        if drip_seconds is not None:
            client.settimeout(drip_seconds)
        deadline = time.monotonic() + WITHIN_SECONDS
        while time.monotonic() < deadline:
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                client.sendall(b" ")  # a drip: never enough, never quite silent
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        else:
            pytest.fail(f"still open after {WITHIN_SECONDS} s; received {received!r}")
    return received


@pytest.mark.parametrize("server_kind", SERVERS)
def test_a_body_that_stops_arriving_gets_408_and_a_closed_connection(
    migrated: Path, servers: Servers, server_kind: str
) -> None:
    env = authgate_env(migrated, {"AUTHGATE_BODY_TIMEOUT_SECONDS": "1"})
    server = servers.start(env, "--server", server_kind)

    received = _stalled_request(server.port, b'{"username": "al', drip_seconds=None)

    assert received.startswith(b"HTTP/1.1 408 "), received
    assert received.endswith(
        b'{"message":"The request body did not arrive in time.","code":"body_timeout"}'
    )
    assert answers(server.port)


def test_a_body_that_drips_gets_408_within_the_same_bound(migrated: Path, servers: Servers) -> None:
    """The bound is on the whole body, not on each pause: a byte every 0.3 s never lets a
    1 s idle timer expire, yet the 100 bytes would take 30 s."""
    env = authgate_env(migrated, {"AUTHGATE_BODY_TIMEOUT_SECONDS": "1"})
    server = servers.start(env)

    received = _stalled_request(server.port, b"{", drip_seconds=0.3)

    assert received.startswith(b"HTTP/1.1 408 "), received
