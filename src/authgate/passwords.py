"""argon2id hashing, off the event loop (the only importer of argon2).

Run as ``python -m authgate.passwords M T P`` it is a hash process: it reads one JSON
request per line on stdin and answers one JSON line on stdout, at the lowest CPU priority.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: (memory_kib, time_cost, parallelism)
Cost = tuple[int, int, int]
_READY = b"ready\n"


class PasswordHasher:
    """Hashes and verifies passwords off the event loop, at most ``concurrency`` at once.

    Servers hash in their own processes at the lowest CPU priority (``processes=True``,
    SCHED_IDLE on Linux):
    a burst of sign-ins then gets only the CPU time nothing else wants, and holds no lock
    the event loop needs. A low-priority thread would: it takes the GIL to start and to
    finish every hash, and while the scheduler keeps it waiting with the GIL held, every
    request waits too (docs/benchmarks.md). Threads serve the tests and one-off commands.
    """

    def __init__(
        self,
        *,
        memory_kib: int,
        time_cost: int,
        parallelism: int,
        concurrency: int = 0,
        processes: bool = False,
    ) -> None:
        cost: Cost = (memory_kib, time_cost, parallelism)
        self._argon2 = _argon2(cost)
        concurrency = concurrency or os.cpu_count() or 1
        self._limiter = anyio.CapacityLimiter(concurrency)
        self.processes = HashProcesses(cost) if processes else None
        #: Told the seconds each hash or verification took (metrics).
        self.observe: Callable[[float], None] | None = None
        # Unknown users are verified against this, so they cost what a wrong password does.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(16))

    async def start(self) -> None:
        """Start one hash process now rather than on the first sign-in."""
        if self.processes is not None:
            await self.processes.start()

    async def aclose(self) -> None:
        if self.processes is not None:
            await self.processes.aclose()

    async def hash(self, password: str) -> str:
        encoded: str = await self._run("hash", password)
        return encoded

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; with ``None`` checks a dummy hash and returns False."""
        target = self._dummy_hash if password_hash is None else password_hash
        ok: bool = await self._run("verify", target, password)
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    async def _run(self, *request: str) -> Any:
        async with self._limiter:
            if self.processes is None:
                result, seconds = await anyio.to_thread.run_sync(answer, self._argon2, request)
            else:
                result, seconds = await self.processes.run(request)
        if self.observe is not None:
            self.observe(seconds)
        return result


def _argon2(cost: Cost) -> _Argon2:
    memory_kib, time_cost, parallelism = cost
    return _Argon2(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def answer(argon2: _Argon2, request: tuple[str, ...] | list[str]) -> tuple[str | bool, float]:
    """``("hash", password)`` or ``("verify", hash, password)``, and the seconds it took."""
    started = time.perf_counter()
    result: str | bool
    if request[0] == "hash":
        result = argon2.hash(request[1])
    else:
        try:
            result = argon2.verify(request[1], request[2])
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            result = False
    return result, time.perf_counter() - started


class HashProcesses:
    """Hash processes of one server process, started as needed and reused.

    The caller bounds the concurrency, so a process is always idle or can be started. A
    process whose request was interrupted (a cancelled sign-in) is stopped, never reused:
    its next line would answer the old request. One that died while idle is replaced
    without failing the request that found it.
    """

    def __init__(self, cost: Cost) -> None:
        self._command = [sys.executable, "-m", __name__, *map(str, cost)]
        self._idle: list[asyncio.subprocess.Process] = []
        self._busy: set[asyncio.subprocess.Process] = set()

    async def start(self) -> None:
        self._idle.append(await self._spawn())

    @property
    def pids(self) -> list[int]:
        return sorted(process.pid for process in (*self._idle, *self._busy))

    async def run(self, request: tuple[str, ...]) -> tuple[Any, float]:
        for _ in range(2):  # a process found dead (killed, out of memory) is replaced, once
            process = self._idle.pop() if self._idle else await self._spawn()
            self._busy.add(process)
            try:
                line = await _ask(process, request)
            except BaseException:
                self._busy.discard(process)
                await _stop(process)
                raise
            self._busy.discard(process)
            if line:
                self._idle.append(process)
                result, seconds = json.loads(line)
                return result, float(seconds)
            await _stop(process)
        raise RuntimeError("hash processes exit before answering")

    async def aclose(self) -> None:
        processes = [*self._idle, *self._busy]
        self._idle, self._busy = [], set()
        for process in processes:
            await _stop(process)

    @property
    def busy(self) -> int:
        return len(self._busy)

    async def _spawn(self) -> asyncio.subprocess.Process:
        """A new hash process, once it says it is ready."""
        process = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        try:
            if await _pipes(process)[1].readline() != _READY:
                raise RuntimeError("a hash process failed to start")
        except BaseException:
            await _stop(process)
            raise
        return process


async def _ask(process: asyncio.subprocess.Process, request: tuple[str, ...]) -> bytes:
    """The process's answer line, or b"" if it is gone."""
    pipe_in, pipe_out = _pipes(process)
    try:
        pipe_in.write(json.dumps(request).encode() + b"\n")
        await pipe_in.drain()
    except (BrokenPipeError, ConnectionResetError):
        return b""
    return await pipe_out.readline()


def _pipes(
    process: asyncio.subprocess.Process,
) -> tuple[asyncio.StreamWriter, asyncio.StreamReader]:
    if process.stdin is None or process.stdout is None:  # never: both are PIPE
        raise RuntimeError("a hash process without pipes")
    return process.stdin, process.stdout


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Kill and reap, even from a cancelled task (else it would stay a zombie)."""
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    with anyio.CancelScope(shield=True):
        await process.wait()


def _lowest_priority() -> None:
    """Only CPU time nobody else wants: Linux's SCHED_IDLE policy, which any ordinary
    thread preempts at once, or else nice 19."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _serve(cost: Cost) -> None:
    """A hash process: one JSON request per line in, one JSON answer per line out."""
    # Its server stops it (kill, or the end of stdin); Ctrl-C at a terminal reaches the
    # whole process group and would only print a traceback here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _lowest_priority()
    argon2 = _argon2(cost)
    sys.stdout.buffer.write(_READY)
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        sys.stdout.write(json.dumps(answer(argon2, json.loads(line))) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    memory_kib, time_cost, parallelism = map(int, sys.argv[1:4])
    _serve((memory_kib, time_cost, parallelism))
