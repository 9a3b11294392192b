"""``specledger bench parallel``: the planner's estimates against real gloo runs.

The local pool is ``world`` worker processes on this machine, each a device
with ``cores / world`` threads. Its profile is measured, not assumed: the
sustained FLOP rate of the reference model's training step in one process with
that many threads, and the link between two gloo workers: the latency of a
4-byte round trip, and as bandwidth what a 4 MiB all-reduce moves per second
(gloo reduces on the same cores, so a collective moves bytes several times
slower than a plain send; the one-way send rate is reported beside it).

Energy (``energy`` in the output): where the machine exposes Intel RAPL
(:mod:`training.parallel.rapl`), the watts are measured here too: a device's idle draw
is the package's over a sleep, shared out over the ``world`` devices, and its active
draw the package's over a float32 matmul loop on its threads, less the others' idle. The
same counters then measure the reference steps, and the planner's estimate for that
work (one device computing, the others idle) stands beside the measurement. Where RAPL
is missing or unreadable the watts are a Raspberry Pi 5's (the datasheet figures of
:mod:`training.parallel.devices`), ``measured_cpu_energy_j`` is null and ``rapl`` says
why. Loopback has no radio, so no link power or per-bit energy is charged.

Every timed figure is a spread over at least MIN_REPEATS repeats (``{"median",
"min", "max", "n"}``, :mod:`training.timing`), wall seconds beside CPU seconds:
``measured_step_s`` per mode over its timed steps (wall: the slowest rank's step;
CPU: all ranks' together), ``profile.step_s`` the reference step the FLOP rate is
taken from (its median), ``profile.link_s`` the probe's round trips and all-reduces
(rank 0's CPU). ``--steps`` below MIN_REPEATS is raised to it.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..timing import MIN_REPEATS, Timing, spread
from .devices import device_class
from .execute import MODES, LinkProbe, ParallelRunFailed, probe_link, run_parallel, step_batch
from .model import Reference
from .planner import DeviceProfile, Objective, estimate, plan
from .rapl import POWERCAP, Rapl, RaplUnavailable, open_rapl
from .shapes import TransformerShape

__all__ = [
    "BENCH_SHAPE",
    "LocalWatts",
    "bench_parallel",
    "cpu_energy",
    "local_pool",
    "local_watts",
    "measure_flops",
]

#: big enough that a step takes a few hundred milliseconds on one core
BENCH_SHAPE = TransformerShape(
    layers=4,
    hidden=256,
    heads=8,
    ffn=1024,
    vocab=1000,
    classes=16,
    seq_len=128,
    batch=8,
    microbatches=4,
)

#: the device class whose watts stand in when this machine's cannot be measured
FALLBACK_CLASS = "raspberry-pi-5-8gb"


def time_step(
    shape: TransformerShape, threads: int, repeats: int = MIN_REPEATS, rapl: Rapl | None = None
) -> tuple[Timing, float | None]:
    """Wall and CPU seconds of the reference model's training step with ``threads``
    threads, after one untimed step (it warms the allocator up), and the package energy
    (J) over the timed steps when ``rapl`` is given. The process's thread count is set
    back to what it was afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    joules: float | None = None
    try:
        model = Reference(shape, seed=0)
        tokens, labels = step_batch(shape, 0)
        timing = Timing()
        start: tuple[int, ...] = ()
        for i in range(max(repeats, MIN_REPEATS) + 1):
            model.zero_grad(set_to_none=True)
            if i == 1 and rapl is not None:
                start = rapl.read()
            wall, cpu = time.perf_counter(), time.process_time()
            model(tokens, labels).backward()
            if i:
                timing.add(time.perf_counter() - wall, time.process_time() - cpu)
        if rapl is not None:
            joules = rapl.joules(start, rapl.read())
    finally:
        torch.set_num_threads(before)
    return timing, joules


class LocalWatts:
    """A local device's idle and active watts and where they come from."""

    def __init__(self, idle_w: float, active_w: float, source: str) -> None:
        self.idle_w, self.active_w, self.source = idle_w, active_w, source


def local_watts(
    rapl: Rapl | None, threads: int, world: int, reason: str = "", window_s: float = 0.5
) -> LocalWatts:
    """Measured with ``rapl`` (idle: a sleep; active: a float32 matmul loop on ``threads``
    threads), else the watts of FALLBACK_CLASS with ``reason`` stated."""
    if rapl is None:
        c = device_class(FALLBACK_CLASS)
        return LocalWatts(
            c.idle_w.value,
            c.active_w.value,
            f"{FALLBACK_CLASS} figures ({c.idle_w.kind} idle, {c.active_w.kind} active; "
            f"training/parallel/devices.py), not this machine's: RAPL {reason}",
        )
    start, t0 = rapl.read(), time.perf_counter()
    time.sleep(window_s)
    idle_pkg = rapl.joules(start, rapl.read()) / (time.perf_counter() - t0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(512, 512)
        start, t0 = rapl.read(), time.perf_counter()
        while time.perf_counter() - t0 < window_s:
            a = torch.tanh(a @ a)
        busy_pkg = rapl.joules(start, rapl.read()) / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(before)
    idle = idle_pkg / world
    active = max(idle, busy_pkg - (world - 1) * idle)
    return LocalWatts(
        idle,
        active,
        f"measured here with RAPL ({rapl.describe()}): idle = package W over a {window_s} s "
        f"sleep / {world} devices; active = package W over a {window_s} s matmul loop on "
        f"{threads} thread(s) less {world - 1} idle device(s)",
    )


def cpu_energy(
    shape: TransformerShape,
    world: int,
    threads: int,
    rapl_root: Path | str = POWERCAP,
    repeats: int = MIN_REPEATS,
) -> tuple[dict[str, Any], LocalWatts, Timing]:
    """The reference steps' CPU energy: the planner's estimate and, where RAPL can be read
    under ``rapl_root``, the measurement over the same steps. Also returns the watts the
    local pool uses and the steps' timing (its FLOP rate comes from them)."""
    try:
        rapl: Rapl | None = open_rapl(rapl_root)
        reason = ""
    except RaplUnavailable as exc:
        rapl, reason = None, f"unavailable: {exc}"
    watts = local_watts(rapl, threads, world, reason)
    timing, measured = time_step(shape, threads, repeats, rapl)
    flops = shape.step_flops() / statistics.median(timing.wall)
    device = _local_device(shape, world, flops, 1.0, 0.0, watts)
    one = estimate("data", shape, [device])  # one device computes the whole step
    # the other world - 1 devices' cores sit idle through the same steps
    per_step = one.energy_j + (world - 1) * watts.idle_w * one.step_s
    estimated = per_step * len(timing.wall)
    block: dict[str, Any] = {
        "rapl": rapl.describe() if rapl is not None else reason,
        "work": f"{len(timing.wall)} reference steps in one process on {threads} thread(s); "
        f"the other {world - 1} device(s) idle",
        "watts": {"idle_w": round(watts.idle_w, 3), "active_w": round(watts.active_w, 3)},
        "watts_source": watts.source,
        "estimated_cpu_energy_j": round(estimated, 4),
        "measured_cpu_energy_j": None if measured is None else round(measured, 4),
        "measured_over_estimated": None
        if measured is None or not estimated
        else round(measured / estimated, 3),
    }
    return block, watts, timing


def measure_flops(shape: TransformerShape, threads: int, repeats: int = MIN_REPEATS) -> float:
    """Sustained FLOP/s of the reference model's training step with ``threads`` threads
    (over the median step)."""
    return shape.step_flops() / statistics.median(time_step(shape, threads, repeats)[0].wall)


def _local_device(
    shape: TransformerShape,
    world: int,
    flops_per_s: float,
    link_bytes_per_s: float,
    link_latency_s: float,
    watts: LocalWatts,
) -> DeviceProfile:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // world
    return DeviceProfile(
        name="local",
        flops_per_s=flops_per_s,
        memory_bytes=memory,
        link_bytes_per_s=link_bytes_per_s,
        link_latency_s=link_latency_s,
        idle_w=watts.idle_w,
        active_w=watts.active_w,
        link_w=0.0,  # loopback: no radio
    )


def local_pool(
    shape: TransformerShape,
    world: int,
    link: LinkProbe | None = None,
    flops_per_s: float | None = None,
    watts: LocalWatts | None = None,
) -> list[DeviceProfile]:
    """``world`` identical devices: this machine's cores shared out, measured (the FLOP
    rate unless given; the watts as :func:`local_watts` finds them unless given)."""
    threads = max(1, (os.cpu_count() or 1) // world)
    link = link or probe_link()
    if watts is None:
        try:
            watts = local_watts(open_rapl(), threads, world)
        except RaplUnavailable as exc:
            watts = local_watts(None, threads, world, f"unavailable: {exc}")
    flops = flops_per_s or measure_flops(shape, threads)
    device = _local_device(shape, world, flops, link.all_reduce_bytes_per_s, link.latency_s, watts)
    return [device] * world


def bench_parallel(
    world: int = 2,
    steps: int = 4,
    objective: Objective = "energy",
    shape: TransformerShape = BENCH_SHAPE,
    rapl_root: Path | str = POWERCAP,
) -> dict[str, Any]:
    """Every mode run for real beside its estimate; ``energy``: the reference steps' CPU
    energy measured with RAPL under ``rapl_root`` beside the estimate, or why not."""
    steps = max(steps, MIN_REPEATS)
    threads = max(1, (os.cpu_count() or 1) // world)
    link = probe_link()
    energy, watts, step = cpu_energy(shape, world, threads, rapl_root)
    flops = shape.step_flops() / statistics.median(step.wall)
    pool = local_pool(shape, world, link, flops, watts)
    modes: dict[str, Any] = {}
    for mode in MODES:
        est = estimate(mode, shape, pool)
        row: dict[str, Any] = {
            "estimated_step_s": round(est.step_s, 5),
            "measured_step_s": None,
            "bytes_per_step": est.bytes_per_step,
            "measured_bytes_per_step": None,
            "energy_j_per_step": round(est.energy_j, 4),
            "memory_bytes_per_device": est.memory_bytes,
        }
        try:
            run = run_parallel(mode, shape, world, steps=steps)
        except ParallelRunFailed as exc:
            row["reason"] = str(exc).splitlines()[0]
        else:
            row["measured_step_s"] = {
                "wall_s": spread(run.raw["step_s"], 5),
                "cpu_s": spread(run.raw["cpu_s"], 5),
            }
            row["measured_bytes_per_step"] = run.bytes_per_step
            row["step_s_measured_over_estimated"] = round(run.step_s / est.step_s, 3)
            if run.bytes_per_step is not None and est.bytes_per_step:
                row["bytes_measured_over_estimated"] = round(
                    run.bytes_per_step / est.bytes_per_step, 4
                )
        modes[mode] = row
    # the choice among the four at the same degree as the runs above
    chosen = plan(shape, pool, objective, devices=world)
    device = pool[0]
    return {
        "world": world,
        "shape": asdict(shape),
        "profile": {
            "flops_per_s": round(device.flops_per_s),
            "link_bytes_per_s": round(device.link_bytes_per_s),
            "link_send_bytes_per_s": round(link.bytes_per_s),
            "link_latency_s": device.link_latency_s,
            "threads_per_device": threads,
            "step_s": step.seconds(5),
            "link_s": {
                name: {"wall_s": spread(got["wall"], 7), "cpu_s": spread(got["cpu"], 7)}
                for name, got in link.samples.items()
            },
            "watts": watts.source,
        },
        "energy": energy,
        "modes": modes,
        "chosen": {
            "objective": objective,
            "mode": chosen.chosen.mode,
            "devices": chosen.chosen.devices,
            "estimated_step_s": round(chosen.chosen.step_s, 5),
            "energy_j_per_step": round(chosen.chosen.energy_j, 4),
            "others": chosen.reasons,
        },
    }
