"""argon2id hashing, off the event loop (the only importer of argon2)."""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class PasswordHasher:
    """Hashes and verifies passwords in worker threads, never on the event loop.

    argon2 releases the GIL, so a burst of sign-ins runs on the other cores while
    the loop keeps serving; the limiter bounds how many hashes run at once so a
    burst cannot starve the loop's own core or exhaust memory.
    """

    def __init__(
        self, *, memory_kib: int, time_cost: int, parallelism: int, concurrency: int = 0
    ) -> None:
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._limiter = anyio.CapacityLimiter(concurrency or os.cpu_count() or 1)
        #: Told the seconds each hash or verification took (metrics).
        self.observe: Callable[[float], None] | None = None
        # Unknown users are verified against this, so they cost what a wrong password does.
        self._dummy_hash = self._argon2.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._timed_hash, password, limiter=self._limiter)

    def _timed_hash(self, password: str) -> str:
        _lower_priority()
        started = time.perf_counter()
        try:
            return self._argon2.hash(password)
        finally:
            if self.observe is not None:
                self.observe(time.perf_counter() - started)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if ``password`` matches; with ``None`` checks a dummy hash and returns False."""
        target = self._dummy_hash if password_hash is None else password_hash
        ok = await anyio.to_thread.run_sync(self._check, target, password, limiter=self._limiter)
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._argon2.check_needs_rehash(password_hash)

    def _check(self, password_hash: str, password: str) -> bool:
        _lower_priority()
        started = time.perf_counter()
        try:
            return self._argon2.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        finally:
            if self.observe is not None:
                self.observe(time.perf_counter() - started)


_niced = threading.local()


def _lower_priority() -> None:
    """Hash threads yield the cores to the event loop: a burst of sign-ins then delays other
    sign-ins, not every other request (measured in docs/benchmarks.md). Linux only; once
    per thread."""
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
