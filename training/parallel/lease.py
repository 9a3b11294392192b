"""What a plan asks of the market: pool devices and link bandwidth, for how long.

A coordinator calls :func:`lease_request` with the planner's choice and the
number of steps; the coordinator agent turns the answer into bids
(``Coordinator.pool_bids``), so that a collaborative training job is scheduled
on the ledger like the split-LoRA one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import TrainingError
from .planner import Estimate, Plan

__all__ = ["PoolLease", "lease_request"]


@dataclass(frozen=True)
class PoolLease:
    """Leases that carry out a plan."""

    mode: str
    devices: int  # pool devices to lease (compute, one each)
    link_bits_per_s: float  # per device: the link rate the plan's step time assumes
    channels_per_device: int  # spectrum channels that carry that rate
    steps: int
    duration_s: float  # the steps at the plan's step time
    bytes_total: int  # sent by all devices over the steps
    energy_j: float  # spent by all devices over the steps


def lease_request(
    chosen: Plan | Estimate,
    steps: int,
    *,
    channel_width_hz: float,
    spectral_efficiency_bps_per_hz: float = 4.0,
) -> PoolLease:
    """The devices and link bandwidth to lease for ``steps`` steps of ``chosen``."""
    e = chosen.chosen if isinstance(chosen, Plan) else chosen
    if steps < 1:
        raise TrainingError(f"steps = {steps}: must be >= 1")
    if channel_width_hz <= 0 or spectral_efficiency_bps_per_hz <= 0:
        raise TrainingError("channel_width_hz and spectral_efficiency_bps_per_hz must be > 0")
    if not e.fits:
        raise TrainingError(f"{e.mode} on {e.devices} device(s) does not fit: {e.why_not}")
    bits = 8 * e.link_bytes_per_s if e.bytes_per_step else 0.0
    per_channel = channel_width_hz * spectral_efficiency_bps_per_hz
    return PoolLease(
        mode=e.mode,
        devices=e.devices,
        link_bits_per_s=bits,
        channels_per_device=math.ceil(bits / per_channel) if bits else 0,
        steps=steps,
        duration_s=steps * e.step_s,
        bytes_total=steps * e.bytes_per_step,
        energy_j=steps * e.energy_j,
    )
