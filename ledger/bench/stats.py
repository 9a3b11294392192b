"""Repeats and their spread: every timed benchmark figure is the median of at least
three runs, with the smallest and largest beside it, and CPU seconds beside wall
seconds (a shared, noisy machine makes one wall-clock shot mean little, and CPU
time says whether a slow run waited or worked).

Pure standard library, so any package's benchmark may use it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

__all__ = ["MIN_REPEATS", "Timing", "spread", "timed", "timed_async"]

MIN_REPEATS = 3

T = TypeVar("T")


def spread(samples: Sequence[float], digits: int = 3) -> dict[str, Any]:
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
    """Wall and CPU seconds of each repeat of one measured block."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, wall_s: float, cpu_s: float) -> None:
        self.wall.append(wall_s)
        self.cpu.append(cpu_s)

    def rate(self, count: float, digits: int = 1) -> dict[str, Any]:
        """``count`` items per wall second and per CPU second, over the repeats."""
        return {
            **spread([count / w for w in self.wall], digits),
            "per_cpu_s": spread([count / c for c in self.cpu if c > 0] or [0.0] * 3, digits),
        }

    def seconds(self, digits: int = 3) -> dict[str, Any]:
        return {"wall_s": spread(self.wall, digits), "cpu_s": spread(self.cpu, digits)}


def timed(fn: Callable[[], T], repeats: int = MIN_REPEATS) -> tuple[Timing, list[T]]:
    """Run ``fn`` ``repeats`` times; the timing of each and what each returned."""
    timing, results = Timing(), []
    for _ in range(max(repeats, MIN_REPEATS)):
        wall, cpu = time.perf_counter(), time.process_time()
        results.append(fn())
        timing.add(time.perf_counter() - wall, time.process_time() - cpu)
    return timing, results


async def timed_async(
    fn: Callable[[], Awaitable[T]], repeats: int = MIN_REPEATS
) -> tuple[Timing, list[T]]:
    """:func:`timed` for a coroutine function."""
    timing, results = Timing(), []
    for _ in range(max(repeats, MIN_REPEATS)):
        wall, cpu = time.perf_counter(), time.process_time()
        results.append(await fn())
        timing.add(time.perf_counter() - wall, time.process_time() - cpu)
    return timing, results
