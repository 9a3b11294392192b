"""Typed bindings of the two contracts: a region's ``RegionMarket`` and the ``RootLedger``."""

from __future__ import annotations

from .region_market import (
    LIFECYCLE_ACTIONS,
    MARKET_DOMAIN,
    MAX_JOINS,
    MAX_LEASES,
    MAX_STEPS,
    RegionMarket,
)
from .root_ledger import ROOT_DOMAIN, RootLedger

__all__ = [
    "LIFECYCLE_ACTIONS",
    "MARKET_DOMAIN",
    "MAX_JOINS",
    "MAX_LEASES",
    "MAX_STEPS",
    "ROOT_DOMAIN",
    "RegionMarket",
    "RootLedger",
]
