"""Password hashing off the event loop: in threads, and in a server's own hash processes."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import anyio
import pytest

from authgate.passwords import PasswordHasher
from tests.conftest import PASSWORD

pytestmark = pytest.mark.anyio

CHEAP = {"memory_kib": 1024, "time_cost": 1, "parallelism": 1}


@pytest.fixture
async def hasher() -> AsyncIterator[PasswordHasher]:
    hasher = PasswordHasher(**CHEAP, concurrency=2, processes=True)
    await hasher.start()
    yield hasher
    await hasher.aclose()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("processes", [False, True])
async def test_hashes_verify_and_odd_passwords_survive_the_trip(processes: bool) -> None:
    hasher = PasswordHasher(**CHEAP, processes=processes)
    try:
        odd = 'line\nbreak "quoted" \\ é 密码 \x00'
        for password in (PASSWORD, odd):
            encoded = await hasher.hash(password)
            assert encoded.startswith("$argon2id$")
            assert await hasher.verify(encoded, password)
            assert not await hasher.verify(encoded, password + "x")
        assert not await hasher.verify(None, PASSWORD)  # the dummy hash: costs the same
        assert not await hasher.verify("not a hash", PASSWORD)
    finally:
        await hasher.aclose()


async def test_hash_processes_run_at_the_lowest_priority_and_end_with_the_server(
    hasher: PasswordHasher,
) -> None:
    assert hasher.processes is not None
    (pid,) = hasher.processes.pids
    assert os.getpriority(os.PRIO_PROCESS, pid) == 19
    if hasattr(os, "SCHED_IDLE"):
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
    assert os.getpriority(os.PRIO_PROCESS, 0) != 19  # the server itself is untouched
    await hasher.aclose()
    assert not _alive(pid)
    assert hasher.processes.pids == []


async def test_no_more_processes_than_the_concurrency(hasher: PasswordHasher) -> None:
    encoded = await hasher.hash(PASSWORD)
    results = []

    async def verify() -> None:
        results.append(await hasher.verify(encoded, PASSWORD))

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(verify)
    assert results == [True] * 8
    assert hasher.processes is not None
    assert len(hasher.processes.pids) == 2


async def test_an_interrupted_request_stops_its_process_and_the_next_one_works(
    hasher: PasswordHasher,
) -> None:
    assert hasher.processes is not None
    encoded = await hasher.hash(PASSWORD)
    (first,) = hasher.processes.pids
    async with anyio.create_task_group() as group:
        group.start_soon(hasher.verify, encoded, PASSWORD)
        while not hasher.processes.busy:
            await anyio.sleep(0)
        group.cancel_scope.cancel()  # a sign-in abandoned while its hash runs
    assert not _alive(first)  # never reused: its next line would answer the old request
    assert await hasher.verify(encoded, PASSWORD)
    assert first not in hasher.processes.pids


async def test_a_hash_process_that_died_is_replaced_without_failing_the_request(
    hasher: PasswordHasher,
) -> None:
    assert hasher.processes is not None
    encoded = await hasher.hash(PASSWORD)
    (dead,) = hasher.processes.pids
    os.kill(dead, signal.SIGKILL)  # the kernel's out-of-memory killer, say
    assert await hasher.verify(encoded, PASSWORD)
    assert not _alive(dead)
    assert dead not in hasher.processes.pids
