"""Latency statistics and the result table the bench prints."""

from __future__ import annotations

import dataclasses
import statistics


@dataclasses.dataclass(frozen=True, slots=True)
class Latency:
    """Percentiles of a latency sample, in milliseconds."""

    p50_ms: float
    p99_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: list[float]) -> Latency:
        """Summarises a list of durations given in seconds."""
        ordered = sorted(seconds)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return cls(statistics.median(ordered) * 1e3, p99 * 1e3, len(ordered))


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table."""

    name: str
    value: str
    ratio: str = ""
    note: str = ""


def render(rows: list[Row]) -> str:
    """Returns the rows as a Markdown table."""
    lines = ["| row | result | ratio | note |", "|---|---|---|---|"]
    lines += [f"| {r.name} | {r.value} | {r.ratio} | {r.note} |" for r in rows]
    return "\n".join(lines)
