"""A collaborative training pool, bought on the ledger like the split-LoRA job.

The planner (:mod:`training.parallel.planner`) picks a parallelism and says how
many pool devices and how much link bandwidth it needs
(:func:`training.parallel.lease.lease_request`); :func:`pool_bids` turns that
into a coordinator's signed bids for one epoch of one region: one unit of
device compute per device, and per device the spectrum channels that carry the
plan's link rate. The region's mechanism then decides which devices win.
"""

from __future__ import annotations

from ledger.market import Kind
from ledger.region import SignedBid
from ledger.tiered import RegionSpec
from ledger.trader import Trader
from training.parallel.lease import PoolLease

from .errors import AgentError
from .roles import DEVICE

__all__ = ["pool_bids"]


def pool_bids(
    coordinator: Trader,
    lease: PoolLease,
    spec: RegionSpec,
    window: tuple[int, int],
    *,
    device_price_wei: int,
    channel_price_wei: int,
) -> list[SignedBid]:
    """The coordinator's bids for ``lease`` in one epoch window of region ``spec``."""
    if lease.channels_per_device > spec.num_channels:
        raise AgentError(
            f"the plan needs {lease.channels_per_device} channels per device "
            f"({lease.link_bits_per_s / 1e6:,.0f} Mbit/s); region {spec.region_id} has "
            f"{spec.num_channels}"
        )
    bids = []
    for _ in range(lease.devices):
        bids.append(coordinator.bid(Kind.COMPUTE, DEVICE, 0, 1, *window, device_price_wei))
        # one-channel bids: every mechanism accepts them (second-price clears per channel)
        bids.extend(
            coordinator.bid(Kind.SPECTRUM, 0, spec.num_channels, 1, *window, channel_price_wei)
            for _ in range(lease.channels_per_device)
        )
    return bids
