"""``specledger plan --devices N``: the four modes side by side on the same devices.

A testbed study of collaborative edge training runs every parallelism on the same
devices and compares step time, energy and traffic; :func:`training.parallel.plan`
instead shows each mode at its own best device count, which hides how the modes compare
at a fixed count. This report holds the count fixed, ranks the modes that fit, and splits
each mode's energy into compute, idle, radio base power and per-bit radio energy, with
the source of every device figure beside it.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .lease import lease_request
from .planner import Objective, PoolCannotFit, compare, plan
from .pool import PoolFile

__all__ = ["side_by_side"]

_FIGURES = (
    "fits",
    "why_not",
    "step_s",
    "compute_s",
    "comm_s",
    "energy_j",
    "compute_energy_j",
    "idle_energy_j",
    "link_energy_j",
    "radio_energy_j",
    "bytes_per_step",
    "memory_bytes",
)


def side_by_side(pf: PoolFile, devices: int, objective: Objective) -> dict[str, Any]:
    """Every mode on the ``devices`` fastest devices of the pool, and the best of those that
    fit for ``objective`` (``chosen`` is None when none fits at that count)."""
    estimates = compare(pf.shape, pf.devices, devices)
    fitting = [e for e in estimates.values() if e.fits]
    by_energy = sorted(fitting, key=lambda e: e.energy_j)
    by_step = sorted(fitting, key=lambda e: e.step_s)
    modes: dict[str, Any] = {}
    for mode, e in estimates.items():
        row = {key: getattr(e, key) for key in _FIGURES}
        row["energy_rank"] = by_energy.index(e) + 1 if e.fits else None
        row["step_rank"] = by_step.index(e) + 1 if e.fits else None
        modes[mode] = row
    chosen: str | None = None
    lease: dict[str, Any] | None = None
    try:
        best = plan(
            pf.shape, pf.devices, objective, energy_weight=pf.energy_weight, devices=devices
        )
    except PoolCannotFit:
        pass
    else:
        chosen = best.chosen.mode
        lease = asdict(
            lease_request(
                best,
                pf.steps,
                channel_width_hz=pf.channel_width_hz,
                spectral_efficiency_bps_per_hz=pf.spectral_efficiency_bps_per_hz,
            )
        )
    first = next(iter(estimates.values()))
    return {
        "objective": objective,
        "params": pf.shape.params,
        "devices": devices,
        "device_names": list(first.device_names),
        "modes": modes,
        "chosen": chosen,
        "lowest_energy": by_energy[0].mode if by_energy else None,
        "lowest_step_s": by_step[0].mode if by_step else None,
        "lease": lease,
        "sources": pf.sources,
    }
