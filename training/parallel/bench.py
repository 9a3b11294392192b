"""``specledger bench parallel``: the planner's estimates against real gloo runs.

The local pool is ``world`` worker processes on this machine, each a device
with ``cores / world`` threads. Its profile is measured, not assumed: the
sustained FLOP rate of the reference model's training step in one process with
that many threads, and the link between two gloo workers: the latency of a
4-byte round trip, and as bandwidth what a 4 MiB all-reduce moves per second
(gloo reduces on the same cores, so a collective moves bytes several times
slower than a plain send; the one-way send rate is reported beside it). Power
cannot be measured here, so the profile's watts are nominal (stated in the
output); energy is an estimate only.

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
from typing import Any

import torch

from ..timing import MIN_REPEATS, Timing, spread
from .execute import MODES, LinkProbe, ParallelRunFailed, probe_link, run_parallel, step_batch
from .model import Reference
from .planner import DeviceProfile, Objective, estimate, plan
from .shapes import TransformerShape

__all__ = ["BENCH_SHAPE", "bench_parallel", "local_pool", "measure_flops"]

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

#: nominal watts of one core of a small edge box (nothing here can measure power)
NOMINAL_W = {"idle_w": 2.0, "active_w": 12.0, "link_w": 1.0}


def time_step(shape: TransformerShape, threads: int, repeats: int = MIN_REPEATS) -> Timing:
    """Wall and CPU seconds of the reference model's training step with ``threads``
    threads, after one untimed step (it warms the allocator up). The process's thread
    count is set back to what it was afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model = Reference(shape, seed=0)
        tokens, labels = step_batch(shape, 0)
        timing = Timing()
        for i in range(max(repeats, MIN_REPEATS) + 1):
            model.zero_grad(set_to_none=True)
            wall, cpu = time.perf_counter(), time.process_time()
            model(tokens, labels).backward()
            if i:
                timing.add(time.perf_counter() - wall, time.process_time() - cpu)
    finally:
        torch.set_num_threads(before)
    return timing


def measure_flops(shape: TransformerShape, threads: int, repeats: int = MIN_REPEATS) -> float:
    """Sustained FLOP/s of the reference model's training step with ``threads`` threads
    (over the median step)."""
    return shape.step_flops() / statistics.median(time_step(shape, threads, repeats).wall)


def local_pool(
    shape: TransformerShape,
    world: int,
    link: LinkProbe | None = None,
    flops_per_s: float | None = None,
) -> list[DeviceProfile]:
    """``world`` identical devices: this machine's cores shared out, measured (the FLOP
    rate unless given)."""
    threads = max(1, (os.cpu_count() or 1) // world)
    link = link or probe_link()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // world
    device = DeviceProfile(
        name="local",
        flops_per_s=flops_per_s or measure_flops(shape, threads),
        memory_bytes=memory,
        link_bytes_per_s=link.all_reduce_bytes_per_s,
        link_latency_s=link.latency_s,
        **NOMINAL_W,
    )
    return [device] * world


def bench_parallel(
    world: int = 2,
    steps: int = 4,
    objective: Objective = "energy",
    shape: TransformerShape = BENCH_SHAPE,
) -> dict[str, Any]:
    steps = max(steps, MIN_REPEATS)
    threads = max(1, (os.cpu_count() or 1) // world)
    link = probe_link()
    step = time_step(shape, threads)
    pool = local_pool(shape, world, link, shape.step_flops() / statistics.median(step.wall))
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
            "watts": f"nominal {NOMINAL_W} (power is not measured here)",
        },
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
