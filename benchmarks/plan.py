"""How long and how big the benchmark runs, and the load shape every scenario shares."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from authgate.config import Settings

DEFAULTS = Settings()
USERS = 8  # accounts that sign in, in turn
THREADS = 2  # wrk threads for every multi-connection run
GET_CONNECTIONS = 64
SIGN_IN_CONNECTIONS = 32
REFRESH_CONNECTIONS = 32
#: The groups of scenarios ``--only`` can pick, in the order they run on each backend.
SCENARIOS = ("gets", "sign-in", "probe", "sign-up", "refresh", "no-rotation", "stored", "router")
#: What sign-in is measured against (``sign_in_bound``), as the report names it.
SIGN_IN_BOUND = "min(cores, workers x hash processes) / verify time"


def hash_processes(workers: int, cores: int) -> int:
    """Hash processes per worker, as ``runtime.py`` sets them by default (cores / workers)."""
    return max(1, cores // workers)


def sign_in_bound(workers: int, verify_seconds: float, cores: int | None = None) -> float:
    """Sign-ins a second the machine can hash at most: every hash process busy, but never
    more hashes at once than cores (argon2id with p=1 fills one core each). One worker
    already hashes on every core, so the bound does not grow with workers: counting one
    core per worker (workers / verify time) credited one worker with half the machine."""
    cores = cores or os.cpu_count() or 1
    return min(cores, workers * hash_processes(workers, cores)) / verify_seconds


@dataclass(frozen=True)
class Plan:
    """How long and how big: the full run, or the seconds-long smoke run (``--quick``)."""

    duration_seconds: int
    rounds: int
    round_seconds: int  # each GET run of the interleaved rounds
    stored_tokens: int
    cache_size: int
    postgres_url: str
    argon2_memory_kib: int = DEFAULTS.argon2_memory_kib
    argon2_time_cost: int = DEFAULTS.argon2_time_cost
    only: frozenset[str] = field(default_factory=lambda: frozenset(SCENARIOS))

    def runs(self, *scenarios: str) -> bool:
        """Whether any of ``scenarios`` (names from ``SCENARIOS``) is part of this run."""
        return any(name in self.only for name in scenarios)

    @property
    def quick(self) -> bool:
        return self.duration_seconds <= 1
