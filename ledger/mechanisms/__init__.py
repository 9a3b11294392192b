"""Allocation mechanisms, chosen per region by the id in its on-chain configuration.

===  ====================  =====================================================
id   name                  rule
===  ====================  =====================================================
0    second_price          (k+1)-th price auction per slot, unit demand (Vickrey)
1    double_auction        McAfee's trade-reduction double auction, unit demand
2    proportional_fair     non-price shares by weight, whole bids in order of share
3    bundle                spectrum + compute all-or-nothing, greedy + critical value
===  ====================  =====================================================

Each mechanism also declares what it takes (``bid_shape``, :meth:`Mechanism.refusal`)
and how a buyer's demand is written as its bids (:meth:`Mechanism.orders_for`), so
the sequencer and the coordinator ask the mechanism, never its id or name. A new
mechanism is a :class:`Mechanism` subclass passed to :func:`register_mechanism`.
What an allocation achieves (welfare, efficiency against the exact optimum, revenue,
surplus, fairness, utilisation) is defined once, in :mod:`.outcome` and :mod:`.optimum`.
"""

from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import (
    Allocation,
    Award,
    BidShape,
    Book,
    Demand,
    Dropped,
    Mechanism,
    Order,
    OrderGroup,
    Unit,
    UnitDemandMechanism,
    supply_units,
)
from .bundle import Bundle
from .double_auction import DoubleAuction
from .optimum import Optimum, optimal_welfare
from .outcome import Outcome, evaluate
from .proportional_fair import ProportionalFair
from .second_price import SecondPrice

__all__ = [
    "MECHANISMS",
    "Allocation",
    "Award",
    "BidShape",
    "Book",
    "Bundle",
    "Demand",
    "DoubleAuction",
    "Dropped",
    "Mechanism",
    "Optimum",
    "Order",
    "OrderGroup",
    "Outcome",
    "ProportionalFair",
    "SecondPrice",
    "Unit",
    "UnitDemandMechanism",
    "evaluate",
    "mechanism_by_id",
    "mechanism_by_name",
    "mechanism_names",
    "optimal_welfare",
    "register_mechanism",
    "register_path",
    "registered_paths",
    "supply_units",
]

MECHANISMS: dict[int, type[Mechanism]] = {}


def register_mechanism(cls: type[Mechanism]) -> type[Mechanism]:
    """Make ``cls`` choosable by its id (on chain) and its name (in scenarios); usable as
    a class decorator. A region names it and nothing else changes."""
    if not isinstance(cls, type) or not issubclass(cls, Mechanism):
        raise ConfigError(f"{cls!r} is not a Mechanism subclass")
    if cls.mechanism_id < 0 or not cls.name:
        raise ConfigError(f"{cls.__name__} needs a mechanism_id >= 0 and a name")
    for known in MECHANISMS.values():
        if known is cls:
            return cls
        if cls.mechanism_id == known.mechanism_id or cls.name == known.name:
            raise ConfigError(
                f"{cls.__name__} ({cls.mechanism_id}, {cls.name!r}) clashes with "
                f"{known.__name__} ({known.mechanism_id}, {known.name!r})"
            )
    MECHANISMS[cls.mechanism_id] = cls
    return cls


_BUILTIN = (SecondPrice, DoubleAuction, ProportionalFair, Bundle)
for _builtin in _BUILTIN:
    register_mechanism(_builtin)


def registered_paths() -> tuple[str, ...]:
    """``module:Class`` of every mechanism registered beyond ours, so that another process
    (a region worker) can register the same ones with :func:`register_path`."""
    return tuple(
        f"{m.__module__}:{m.__qualname__}"
        for _, m in sorted(MECHANISMS.items())
        if m not in _BUILTIN
    )


def register_path(path: str) -> type[Mechanism]:
    """Import ``module:Class`` and register it (see :func:`registered_paths`)."""
    module, _, name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"mechanism {path} cannot be imported here ({exc}): define it at a module's "
            f"top level so region processes can register it too"
        ) from exc
    return register_mechanism(cls)


def mechanism_names() -> tuple[str, ...]:
    """The names a scenario may choose, in id order."""
    return tuple(MECHANISMS[i].name for i in sorted(MECHANISMS))


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
