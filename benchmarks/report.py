"""The benchmark's report: targets first (met or not), then every scenario, as text or markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from load import Result
from plan import SIGN_IN_BOUND


@dataclass(frozen=True)
class Row:
    """One scenario's measurement; ``result`` is None when the scenario did not run."""

    scenario: str
    backend: str
    result: Result | None
    note: str = ""


@dataclass(frozen=True)
class Target:
    """A ratio the issue asks for: ``measured`` against ``required`` (a floor or a ceiling)."""

    name: str
    required: float
    measured: float | None
    detail: str
    clean: bool = True  # the runs behind the ratio answered every request with a 2xx
    ceiling: bool = False  # True: the ratio must not exceed ``required``

    @property
    def status(self) -> str:
        if self.measured is None:
            return "not run"
        if not self.clean:
            return "NOT met (errors)"
        ok = self.measured <= self.required if self.ceiling else self.measured >= self.required
        return "met" if ok else "NOT met"

    @property
    def requirement(self) -> str:
        return f"{'<=' if self.ceiling else '>='} {self.required:g}"


@dataclass(frozen=True)
class MemoryRow:
    what: str
    backend: str
    mib: Sequence[float]  # one figure per worker process


@dataclass(frozen=True)
class SignInFigure:
    """Sign-in throughput against its bound (``plan.sign_in_bound``)."""

    backend: str
    rate: float
    bound: float


@dataclass
class Report:
    workers: int
    title: str
    context: list[str] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    sign_ins: list[SignInFigure] = field(default_factory=list)

    def met(self) -> int:
        return sum(target.status == "met" for target in self.targets)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cells(row: Row) -> list[str]:
    result = row.result
    if result is None:
        return [row.scenario, row.backend, "not run", "-", "-", "-", row.note]
    errors = str(result.non_2xx)
    if result.socket_errors:
        errors += f" (+{result.socket_errors} socket)"
    rate = f"{result.rate:,.0f}" if result.rate >= 100 else f"{result.rate:,.1f}"
    return [
        row.scenario,
        row.backend,
        rate,
        _ms(result.p50_ms),
        _ms(result.p99_ms),
        errors,
        row.note,
    ]


ROW_HEADER = ["scenario", "database", "req/s", "p50 ms", "p99 ms", "non-2xx", "note"]
TARGET_HEADER = ["target", "required", "measured", "status", "from"]
MEMORY_HEADER = ["worker memory", "database", "MiB per worker"]


def _target_cells(target: Target) -> list[str]:
    return [target.name, target.requirement, _ratio(target.measured), target.status, target.detail]


def _memory_cells(row: MemoryRow) -> list[str]:
    return [row.what, row.backend, ", ".join(f"{mib:.1f}" for mib in row.mib) or "-"]


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        for cells in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in rows
    ]
    return "\n".join(lines)


def render(report: Report, *, markdown: bool) -> str:
    table = _markdown_table if markdown else _text_table
    heading = f"### {report.title}" if markdown else f"== {report.title} =="
    met = f"Targets met: {report.met()} of {len(report.targets)}."
    parts = [
        heading,
        "\n".join(("- " if markdown else "") + line for line in report.context),
        met,
        table(TARGET_HEADER, [_target_cells(target) for target in report.targets]),
        table(ROW_HEADER, [_cells(row) for row in report.rows]),
        table(MEMORY_HEADER, [_memory_cells(row) for row in report.memory]),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def render_sign_ins(reports: Sequence[Report], *, markdown: bool) -> str:
    """Sign-in by worker count against its bound, and against one worker's total: what to
    run on this machine."""
    one = {f.backend: f.rate for r in reports if r.workers == 1 for f in r.sign_ins}
    rows = [
        [
            str(report.workers),
            figure.backend,
            f"{figure.rate:,.1f}",
            f"{figure.bound:,.1f}",
            f"{figure.rate / figure.bound:.2f}",
            format(figure.rate / one[figure.backend], ".2f") if one.get(figure.backend) else "-",
        ]
        for report in reports
        for figure in report.sign_ins
    ]
    if not rows:
        return ""
    header = ["workers", "database", "sign-ins/s", "bound", "x bound", "x one worker"]
    title = f"Sign-in by worker count (bound: {SIGN_IN_BOUND})"
    table = _markdown_table if markdown else _text_table
    return (f"### {title}" if markdown else f"== {title} ==") + "\n\n" + table(header, rows) + "\n"
