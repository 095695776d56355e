"""The soak's memory: samples of every worker's and hash process's RSS, and the verdict.

A worker's growth is read in two halves of the load: from the sample taken before the load
to the middle one, and from the middle to the last one under load. Memory that reaches a
plateau grows in the first half (caches, throttle windows and revoked sessions filling up,
the allocator's arenas) and not in the second; a leak grows in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from servers import Server, children, memory
from soak_clients import Tally


@dataclass(frozen=True)
class Sample:
    """Resident memory in KiB at ``seconds`` into the load (negative: before it)."""

    seconds: float
    main_kib: int
    workers: dict[int, int]  # worker pid -> RSS
    hashers: dict[int, int]  # hash process pid -> RSS, every worker's together
    requests: int
    access_tokens: int  # issued so far


def take(server: Server, seconds: float, tally: Tally) -> Sample:
    workers: dict[int, int] = {}
    hashers: dict[int, int] = {}
    for pid in server.workers():
        try:
            workers[pid] = memory(pid).rss_kib
            for child in children(pid):
                hashers[child] = memory(child).rss_kib
        except (OSError, KeyError):  # ended while we looked (a hash process is replaced)
            continue
    return Sample(
        seconds=seconds,
        main_kib=memory(server.process.pid).rss_kib,
        workers=workers,
        hashers=hashers,
        requests=tally.requests,
        access_tokens=tally.access_tokens,
    )


@dataclass(frozen=True)
class Growth:
    """One worker's RSS over the soak, in MiB."""

    pid: int
    start: float
    middle: float
    three_quarters: float
    end: float
    peak: float
    second_half_slope: float  # MiB per hour, least squares over the second half

    @property
    def first_half(self) -> float:
        return self.middle - self.start

    @property
    def second_half(self) -> float:
        return self.end - self.middle

    @property
    def last_quarter(self) -> float:
        return self.end - self.three_quarters


@dataclass(frozen=True)
class Verdict:
    growth: list[Growth]
    tolerance: float  # a fraction of the middle RSS the second half may add
    replaced: bool  # a worker's pid changed during the soak: no verdict

    @property
    def plateau(self) -> bool:
        return not self.replaced and all(
            g.second_half <= self.tolerance * g.middle for g in self.growth
        )

    @property
    def label(self) -> str:
        if self.replaced:
            return "no verdict (a worker was replaced during the soak)"
        limit = f"{self.tolerance:.0%} of its RSS at the middle"
        if self.plateau:
            return f"PLATEAU: every worker's second-half growth is within {limit}"
        return f"GROWING: a worker's second-half growth exceeds {limit}"


def _mib(kib: int) -> float:
    return kib / 1024


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) points, in MiB per hour."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * 3600


def _nearest(samples: Sequence[Sample], seconds: float) -> Sample:
    return min(samples, key=lambda s: abs(s.seconds - seconds))


def verdict(samples: Sequence[Sample], duration: float, tolerance: float) -> Verdict:
    """``samples`` from before the load to its end (later samples, after it, are ignored)."""
    during = [s for s in samples if s.seconds <= duration + 1]
    first, last = during[0], during[-1]
    middle = _nearest(during, last.seconds / 2)
    three_quarters = _nearest(during, last.seconds * 3 / 4)
    replaced = set(first.workers) != set(last.workers) or set(middle.workers) != set(first.workers)
    growth = []
    for pid in sorted(first.workers):
        if pid not in last.workers or pid not in middle.workers:
            continue
        half = [(s.seconds, _mib(s.workers[pid])) for s in during if s.seconds >= middle.seconds]
        growth.append(
            Growth(
                pid=pid,
                start=_mib(first.workers[pid]),
                middle=_mib(middle.workers[pid]),
                three_quarters=_mib(three_quarters.workers.get(pid, middle.workers[pid])),
                end=_mib(last.workers[pid]),
                peak=max(_mib(s.workers.get(pid, 0)) for s in samples),
                second_half_slope=_slope([p for p in half if p[1]]),
            )
        )
    return Verdict(growth=growth, tolerance=tolerance, replaced=replaced)


def table(samples: Sequence[Sample], *, markdown: bool) -> list[str]:
    """One row per sample: time, requests so far, each worker, the hash processes, main."""
    pids = sorted({pid for s in samples for pid in s.workers})
    head = [
        "minute",
        "requests",
        "access tokens issued",
        *(f"worker {i + 1} MiB" for i in range(len(pids))),
        "hash processes (count: MiB each)",
        "main MiB",
    ]
    rows = []
    for s in samples:
        hashers = sorted(s.hashers.values())
        hash_text = (
            f"{len(hashers)}: " + ", ".join(f"{_mib(k):.1f}" for k in hashers) if hashers else "0"
        )
        rows.append(
            [
                f"{s.seconds / 60:.1f}" if s.seconds >= 0 else "before",
                f"{s.requests:,}",
                f"{s.access_tokens:,}",
                *(f"{_mib(s.workers[p]):.1f}" if p in s.workers else "-" for p in pids),
                hash_text,
                f"{_mib(s.main_kib):.1f}",
            ]
        )
    if markdown:
        return [
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
            *("| " + " | ".join(row) + " |" for row in rows),
        ]
    widths = [max(len(x) for x in column) for column in zip(head, *rows, strict=True)]
    return [
        "  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True))
        for line in [head, *rows]
    ]


def growth_lines(found: Verdict) -> list[str]:
    lines = []
    for index, g in enumerate(found.growth, 1):
        lines.append(
            f"worker {index} (pid {g.pid}): {g.start:.1f} -> {g.middle:.1f} -> {g.end:.1f} MiB; "
            f"first half {g.first_half:+.1f} MiB, second half {g.second_half:+.1f} MiB, "
            f"last quarter {g.last_quarter:+.1f} MiB "
            f"(least squares over the second half: {g.second_half_slope:+.1f} MiB/hour); "
            f"peak {g.peak:.1f} MiB"
        )
    return lines


def write_samples(samples: Sequence[Sample], path: Path) -> None:
    """Every sample as CSV, for plotting: seconds, requests, access tokens, main KiB, then
    pid=KiB pairs of the workers and of the hash processes."""
    with path.open("w") as out:
        for s in samples:
            workers = " ".join(f"{pid}={kib}" for pid, kib in sorted(s.workers.items()))
            hashers = " ".join(f"{pid}={kib}" for pid, kib in sorted(s.hashers.items()))
            out.write(
                f"{s.seconds:.0f},{s.requests},{s.access_tokens},{s.main_kib},{workers},{hashers}\n"
            )
