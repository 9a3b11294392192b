"""Allocation mechanisms, chosen per region by the id in its on-chain configuration.

===  ====================  =====================================================
id   name                  rule
===  ====================  =====================================================
0    second_price          (k+1)-th price auction per slot, unit demand (Vickrey)
1    double_auction        McAfee's trade-reduction double auction, unit demand
2    proportional_fair     non-price shares by weight, capped by demand
3    bundle                spectrum + compute all-or-nothing, greedy + critical value
===  ====================  =====================================================
"""

from __future__ import annotations

from ..errors import ConfigError
from .base import Allocation, Award, Book, Mechanism, Unit, supply_units
from .bundle import Bundle
from .double_auction import DoubleAuction
from .proportional_fair import ProportionalFair
from .second_price import SecondPrice

__all__ = [
    "MECHANISMS",
    "Allocation",
    "Award",
    "Book",
    "Bundle",
    "DoubleAuction",
    "Mechanism",
    "ProportionalFair",
    "SecondPrice",
    "Unit",
    "mechanism_by_id",
    "mechanism_by_name",
    "supply_units",
]

MECHANISMS: dict[int, type[Mechanism]] = {
    m.mechanism_id: m for m in (SecondPrice, DoubleAuction, ProportionalFair, Bundle)
}


def mechanism_by_id(mechanism_id: int) -> Mechanism:
    try:
        return MECHANISMS[mechanism_id]()
    except KeyError:
        raise ConfigError(
            f"unknown mechanism id {mechanism_id}: known are "
            f"{', '.join(f'{k} ({v.name})' for k, v in MECHANISMS.items())}"
        ) from None


def mechanism_by_name(name: str) -> Mechanism:
    for m in MECHANISMS.values():
        if m.name == name:
            return m()
    raise ConfigError(
        f"unknown mechanism {name!r}: choose one of "
        f"{', '.join(m.name for m in MECHANISMS.values())}"
    )
