"""Results of the benchmark: per-round figures, their statistics, the table and the JSON.

A ``Row`` is one operation; it holds a ``Side`` per tool: the status (``ok``, ``not
implemented``, ``failed``, ``skipped``) and the measured rounds. Statistics use the rounds
that succeeded; the ratio repofs/restic is taken per round where both succeeded.
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass, field

TOOLS = ("repofs", "restic")
OK, NOT_IMPLEMENTED, FAILED, SKIPPED = "ok", "not implemented", "failed", "skipped"


@dataclass
class Measure:
    """One timed run of one tool."""

    round: int
    seconds: float
    rss_bytes: int | None
    out_bytes: int | None = None
    error: str | None = None


@dataclass
class Side:
    """One tool's part of a row."""

    status: str = OK
    reason: str = ""
    runs: list[Measure] = field(default_factory=list)

    @property
    def good(self) -> list[Measure]:
        return [m for m in self.runs if m.error is None]

    def median(self) -> float | None:
        good = self.good
        return statistics.median(m.seconds for m in good) if good else None

    def peak_rss(self) -> int | None:
        values = [m.rss_bytes for m in self.good if m.rss_bytes]
        return max(values) if values else None


@dataclass
class Row:
    """One operation, both tools."""

    key: str
    group: str
    title: str
    data_bytes: int | None = None  # what MB/s is counted over; None: no MB/s
    data_text: str = ""
    sides: dict[str, Side] = field(default_factory=lambda: {t: Side() for t in TOOLS})

    def record(self, tool: str, measure: Measure) -> None:
        side = self.sides[tool]
        side.runs.append(measure)
        if measure.error is not None and side.status == OK:
            side.status, side.reason = FAILED, measure.error

    def ratios(self) -> list[float]:
        restic = {m.round: m.seconds for m in self.sides["restic"].good}
        return [m.seconds / restic[m.round] for m in self.sides["repofs"].good
                if restic.get(m.round)]

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {k: v for k, v in dataclasses.asdict(self).items() if k != "sides"}
        for tool, side in self.sides.items():
            median = side.median()
            out[tool] = {
                "status": side.status, "reason": side.reason,
                "median_seconds": median,
                "mb_per_second": mb_per_s(self.data_bytes, median),
                "peak_rss_bytes": side.peak_rss(),
                "runs": [dataclasses.asdict(m) for m in side.runs],
            }
        ratios = self.ratios()
        out["ratio_repofs_to_restic"] = (
            {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "pairs": len(ratios)}
            if ratios else None)
        return out


def mb_per_s(data_bytes: int | None, seconds: float | None) -> float | None:
    if not data_bytes or not seconds:
        return None
    return data_bytes / seconds / 1e6


def megabytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def mib(n: int | None) -> str:
    return f"{n / 2**20:,.0f}" if n else "-"


def seconds_text(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s:.3f}" if s < 10 else f"{s:.1f}"


def side_cells(row: Row, tool: str) -> list[str] | str:
    side = row.sides[tool]
    if side.status != OK:
        return f"{side.status}" + (f" ({side.reason})" if side.reason and side.status != FAILED else "")
    median = side.median()
    speed = mb_per_s(row.data_bytes, median)
    return [seconds_text(median), f"{speed:,.1f}" if speed else "-", mib(side.peak_rss())]


def ratio_text(row: Row) -> str:
    ratios = row.ratios()
    if not ratios:
        return "-"
    text = f"{statistics.median(ratios):.2f}"
    return text + (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else "")


def table(rows: list[Row]) -> str:
    """The A/B table; failures are listed below it with their messages."""
    head = ["operation", "data", "repofs s", "MB/s", "RSS MiB", "restic s", "MB/s", "RSS MiB",
            "repofs/restic"]
    body: list[list[str]] = []
    for row in rows:
        cells = [row.title, row.data_text]
        for tool in TOOLS:
            got = side_cells(row, tool)
            cells += got if isinstance(got, list) else [got, "\0", "\0"]
        cells.append(ratio_text(row))
        body.append(cells)
    widths = [len(h) for h in head]
    for cells in body:
        for i, cell in enumerate(cells):
            if i in (2, 5) and cells[i + 1] == "\0":
                continue  # a status spans three columns; it does not widen the first
            if cell != "\0":
                widths[i] = max(widths[i], len(cell))
    span = [widths[2] + widths[3] + widths[4] + 4, widths[5] + widths[6] + widths[7] + 4]

    def render(cells: list[str]) -> str:
        out = [cells[0].ljust(widths[0]), cells[1].rjust(widths[1])]
        for n, at in enumerate((2, 5)):
            if cells[at + 1] == "\0":
                out.append(cells[at][:span[n]].ljust(span[n]))
            else:
                out.append("  ".join(cells[at + i].rjust(widths[at + i]) for i in range(3)))
        out.append(cells[8].rjust(widths[8]))
        return "   ".join(out).rstrip()

    text = [render(head), "-" * len(render(head))]
    group = None
    for row, cells in zip(rows, body):
        if group is not None and row.group != group:
            text.append("")
        group = row.group
        text.append(render(cells))
    failures = [f"  {row.title}, {tool}: {row.sides[tool].reason}"
                for row in rows for tool in TOOLS if row.sides[tool].status == FAILED]
    if failures:
        text += ["", "failed:"] + failures
    return "\n".join(text)


def simple_table(head: list[str], body: list[list[str]]) -> str:
    """Left-aligned first column, the others right-aligned."""
    widths = [max(len(r[i]) for r in [head] + body) for i in range(len(head))]
    out = []
    for n, cells in enumerate([head] + body):
        out.append("   ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                              for i, c in enumerate(cells)).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)
