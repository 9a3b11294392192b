"""Repeats and their spread for training's benchmarks: every timed figure is the median
of at least MIN_REPEATS runs with the smallest and largest beside it, CPU seconds beside
wall seconds. The same shape as ``ledger/bench/stats.py`` (``{"median", "min", "max",
"n"}``), kept here because training never imports ledger.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["MIN_REPEATS", "Timing", "spread"]

MIN_REPEATS = 3


def spread(samples: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """``{"median", "min", "max", "n"}`` of ``samples`` (at least MIN_REPEATS of them)."""
    if len(samples) < MIN_REPEATS:
        raise ValueError(f"{len(samples)} samples: a figure needs at least {MIN_REPEATS} repeats")
    return {
        "median": round(statistics.median(samples), digits),
        "min": round(min(samples), digits),
        "max": round(max(samples), digits),
        "n": len(samples),
    }


class Timing:
    """Wall and CPU seconds (``time.process_time``: this process) of each repeat."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, wall_s: float, cpu_s: float) -> None:
        self.wall.append(wall_s)
        self.cpu.append(cpu_s)

    def measure(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` once, timed; what it returned."""
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        self.add(time.perf_counter() - wall, time.process_time() - cpu)
        return result

    def seconds(self, digits: int = 4) -> dict[str, Any]:
        return {"wall_s": spread(self.wall, digits), "cpu_s": spread(self.cpu, digits)}
