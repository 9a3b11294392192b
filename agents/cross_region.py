"""The scenario's ``[cross_region]`` table: a beam lease over several regions.

::

    [cross_region]
    regions = [1, 2]   # the regions the beam spans (at least two)
    channels = 2       # the top channels of the satellite band, in every region
    every = 1          # one lease every `every` epochs, from epoch 1

Read here, light (no ledger imports), so a bad file is refused before anything heavy
loads; the run's side is :mod:`agents.beams`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.config import RegionConfig

__all__ = ["CROSS_REGION_KEYS", "CrossRegionSpec", "read_cross_region"]

#: the fields of ``[cross_region]``
CROSS_REGION_KEYS = ("regions", "channels", "every")


@dataclass(frozen=True)
class CrossRegionSpec:
    """``[cross_region]``: a beam lease over ``regions`` every ``every`` epochs."""

    regions: tuple[int, ...]
    channels: int = 1  # the top channels of the satellite band, in every region
    every: int = 1


def read_cross_region(
    top: Any, regions: Sequence[RegionConfig], satellites: int
) -> CrossRegionSpec | None:
    """``[cross_region]`` of a scenario (None when absent), checked against its regions:
    at least two of them, a satellite operator to offer the beam, channels within the
    satellite band (the upper half of the narrowest region's band)."""
    if "cross_region" not in top.table:
        return None
    c = top.sub("cross_region")
    ids = {r.region_id for r in regions}
    spanned = c.table.get("regions")
    if (
        not isinstance(spanned, list)
        or len(spanned) < 2
        or not all(isinstance(r, int) and not isinstance(r, bool) for r in spanned)
        or len(set(spanned)) != len(spanned)
        or not set(spanned) <= ids
    ):
        raise c.fail(
            "regions", f"a list of at least two distinct region ids of {sorted(ids)}", spanned
        )
    if satellites < 1:
        raise c.fail(
            "regions",
            "a scenario with participants.satellite_operators >= 1 (the beam's seller)",
            spanned,
        )
    narrowest = min(r.num_channels for r in regions)
    band = narrowest - narrowest // 2
    return CrossRegionSpec(
        regions=tuple(int(r) for r in spanned),
        channels=c.int("channels", 1, 1, band, "the satellite band's width"),
        every=c.int("every", 1, 1, 1_000_000),
    )
