"""How long and how big the benchmark runs, and the load shape every scenario shares."""

from __future__ import annotations

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
