"""The demand side's configuration: value distributions, ``[demand]`` and ``[reserves]``.

Buyers' valuations and sellers' reserves are drawn from distributions the scenario
names (the buyers themselves are :mod:`agents.buyers`).

A scenario names a distribution as an inline table whose parameters carry their unit
in their name, so a file says what its numbers are:

========== ============================================ ===============================
``dist``    parameters                                   a draw
========== ============================================ ===============================
constant    ``value_wei``                                exactly ``value_wei``
uniform     ``low_wei``, ``high_wei``                    uniform on [low, high)
lognormal   ``median_wei``, ``sigma``                    ``median * exp(sigma * Z)``
normal      ``mean_wei``, ``sd_wei``; optional           normal, truncated to
            ``low_wei`` (default 1), ``high_wei``        [low, high] (inverse CDF)
========== ============================================ ===============================

``Z`` is a standard normal draw. Every draw is one call on the generator handed in (so
one draw per value, in a fixed order) and is rounded down to whole wei, at least 1: a
price of 0 is no price. A missing, unknown or out-of-range parameter is refused with
one line naming the field (:func:`parse_distribution`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from ledger.config import RegionConfig
from ledger.mechanisms import BidShape

from .errors import ScenarioError

__all__ = [
    "DEMAND_KEYS",
    "DISTRIBUTIONS",
    "MAX_VALUE_WEI",
    "RESERVE_KEYS",
    "Constant",
    "DemandSpec",
    "Distribution",
    "LogNormal",
    "Normal",
    "Reserves",
    "Uniform",
    "parse_distribution",
    "read_demand",
    "read_reserves",
]

#: a million ether per channel-epoch: no valuation or reserve is near it (and a bid's
#: maximum price stays far below the sequencer's 10**30 wei)
MAX_VALUE_WEI = 1e24
MAX_SIGMA = 5.0  # a lognormal's log-spread: beyond it one draw in a thousand is 10**6 x the median
MAX_LOAD = 10.0  # offered load: ten times capacity overloads anything; more only costs bids
MAX_WAITING = 4_096  # orders waiting in one region: each is a signed bid every epoch
MAX_BACKLOG_EPOCHS = 1_000  # an order's age limit: a run has at most 1,000 epochs

DEMAND_KEYS = (
    "load",
    "arrivals",
    "backlog_epochs",
    "max_waiting",
    "uplink_value",
    "operator_value",
)
RESERVE_KEYS = ("terrestrial_operators", "satellite_operators", "edge_servers", "edge_devices")


class Distribution(ABC):
    """Values in wei, one per draw."""

    name: ClassVar[str] = ""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> float:
        """One value in wei (a float): exactly one call on ``rng``."""

    @abstractmethod
    def expected_wei(self) -> float:
        """The distribution's mean (what a report compares measured means with)."""

    def draw(self, rng: np.random.Generator) -> int:
        """One value in whole wei, at least 1."""
        return max(1, int(self.sample(rng)))


@dataclass(frozen=True)
class Constant(Distribution):
    value_wei: float
    name: ClassVar[str] = "constant"

    def sample(self, rng: np.random.Generator) -> float:
        rng.random()  # one call per draw, whatever the distribution: draws stay aligned
        return self.value_wei

    def expected_wei(self) -> float:
        return self.value_wei


@dataclass(frozen=True)
class Uniform(Distribution):
    low_wei: float
    high_wei: float
    name: ClassVar[str] = "uniform"

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low_wei, self.high_wei))

    def expected_wei(self) -> float:
        return (self.low_wei + self.high_wei) / 2


@dataclass(frozen=True)
class LogNormal(Distribution):
    median_wei: float
    sigma: float
    name: ClassVar[str] = "lognormal"

    def sample(self, rng: np.random.Generator) -> float:
        return self.median_wei * math.exp(self.sigma * float(rng.standard_normal()))

    def expected_wei(self) -> float:
        return self.median_wei * math.exp(self.sigma**2 / 2)


@dataclass(frozen=True)
class Normal(Distribution):
    """A normal truncated to [low, high]: a value below 1 wei or above a bound is no
    value, and clipping would pile probability on the bound."""

    mean_wei: float
    sd_wei: float
    low_wei: float = 1.0
    high_wei: float = MAX_VALUE_WEI
    name: ClassVar[str] = "normal"

    def _bounds(self) -> tuple[float, float]:
        return (self.low_wei - self.mean_wei) / self.sd_wei, (
            self.high_wei - self.mean_wei
        ) / self.sd_wei

    def sample(self, rng: np.random.Generator) -> float:
        from scipy.stats import truncnorm  # only a scenario that names it pays the import

        a, b = self._bounds()
        u = float(rng.random())
        return float(truncnorm.ppf(u, a, b, loc=self.mean_wei, scale=self.sd_wei))

    def expected_wei(self) -> float:
        from scipy.stats import truncnorm

        a, b = self._bounds()
        return float(truncnorm.mean(a, b, loc=self.mean_wei, scale=self.sd_wei))


#: each distribution's parameters: (name, required, lower bound, upper bound)
DISTRIBUTIONS: dict[str, tuple[tuple[str, bool, float, float], ...]] = {
    "constant": (("value_wei", True, 1.0, MAX_VALUE_WEI),),
    "uniform": (("low_wei", True, 1.0, MAX_VALUE_WEI), ("high_wei", True, 1.0, MAX_VALUE_WEI)),
    "lognormal": (("median_wei", True, 1.0, MAX_VALUE_WEI), ("sigma", True, 0.0, MAX_SIGMA)),
    "normal": (
        ("mean_wei", True, 1.0, MAX_VALUE_WEI),
        ("sd_wei", True, 1.0, MAX_VALUE_WEI),
        ("low_wei", False, 1.0, MAX_VALUE_WEI),
        ("high_wei", False, 1.0, MAX_VALUE_WEI),
    ),
}


def parse_distribution(value: Any, where: str) -> Distribution:
    """The distribution an inline table names; ``where`` (``file: demand.uplink_value``)
    starts every error, which says what was wrong and what the table must hold."""
    if not isinstance(value, dict):
        raise ScenarioError(
            f"{where}: expected an inline table such as "
            f'{{ dist = "lognormal", median_wei = 2e12, sigma = 0.5 }}, got {value!r:.60}'
        )
    dist = value.get("dist")
    if dist not in DISTRIBUTIONS:
        raise ScenarioError(
            f"{where}.dist: expected one of {', '.join(DISTRIBUTIONS)}, got {dist!r:.60}"
        )
    spec = DISTRIBUTIONS[dist]
    names = [p[0] for p in spec]
    for key in value:
        if key != "dist" and key not in names:
            raise ScenarioError(
                f"{where}.{key!s:.40}: unknown parameter of a {dist} distribution; "
                f"expected {', '.join(names)}"
            )
    params: dict[str, float] = {}
    for key, required, lo, hi in spec:
        if key not in value:
            if required:
                raise ScenarioError(
                    f"{where}.{key}: missing; a {dist} distribution needs {', '.join(names)}"
                )
            continue
        x = value[key]
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise ScenarioError(f"{where}.{key}: expected a finite number, got {x!r:.60}")
        if not lo <= x <= hi:
            raise ScenarioError(f"{where}.{key}: expected a number in [{lo:g}, {hi:g}], got {x!r}")
        params[key] = float(x)
    if dist == "constant":
        return Constant(params["value_wei"])
    if dist == "uniform":
        if params["high_wei"] <= params["low_wei"]:
            raise ScenarioError(
                f"{where}.high_wei: expected more than low_wei ({params['low_wei']:g}), "
                f'got {params["high_wei"]:g} (for one value use dist = "constant")'
            )
        return Uniform(params["low_wei"], params["high_wei"])
    if dist == "lognormal":
        return LogNormal(params["median_wei"], params["sigma"])
    normal = Normal(
        params["mean_wei"],
        params["sd_wei"],
        params.get("low_wei", 1.0),
        params.get("high_wei", MAX_VALUE_WEI),
    )
    if not normal.low_wei <= normal.mean_wei <= normal.high_wei:
        raise ScenarioError(
            f"{where}: expected low_wei ({normal.low_wei:g}) <= mean_wei "
            f"({normal.mean_wei:g}) <= high_wei ({normal.high_wei:g}), and low_wei < high_wei"
        )
    if normal.high_wei <= normal.low_wei:
        raise ScenarioError(
            f"{where}.high_wei: expected more than low_wei ({normal.low_wei:g}), "
            f"got {normal.high_wei:g}"
        )
    return normal


@dataclass(frozen=True)
class DemandSpec:
    """The spectrum buyers' demand (``[demand]``; the buyers are :mod:`agents.buyers`).

    Offered load: in region r and epoch e, new one-channel orders arrive for
    ``load x S(r, e)`` channels on average, where ``S(r, e)`` is the number of unprotected
    channels on offer in r that epoch — Poisson with that mean, or (``arrivals =
    "fixed"``) exactly that many, the fraction carried to the next epoch. An order bids
    every epoch until it wins a lease or has waited ``backlog_epochs`` epochs after the
    one it arrived in; then it expires."""

    load: float = 0.5
    arrivals: Literal["poisson", "fixed"] = "poisson"
    backlog_epochs: int = 0  # 0: an order bids only in the epoch it arrives in
    max_waiting: int = 1_024  # per region: an arrival beyond it is turned away (counted)
    uplink_value: Distribution | None = None  # None: agents.buyers' default
    operator_value: Distribution | None = None


@dataclass(frozen=True)
class Reserves:
    """Sellers' reserve prices per unit and epoch (``[reserves]``), one draw per seller;
    None keeps the draw every scenario had before it could name one (the quickstart's
    leases stay exactly what they were)."""

    terrestrial_operators: Distribution | None = None
    satellite_operators: Distribution | None = None
    edge_servers: Distribution | None = None
    edge_devices: Distribution | None = None


class _Table(Protocol):
    """What this module reads a scenario table with (``agents.scenario``'s reader)."""

    path: Path
    prefix: str
    table: dict[str, Any]

    def sub(self, key: str, required: bool = True) -> _Table: ...
    def int(self, key: str, default: int | None, lo: int, hi: int, why: str = "") -> int: ...
    def float(self, key: str, default: float, lo: float, hi: float) -> float: ...
    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str: ...


def _distribution(t: _Table, key: str) -> Distribution | None:
    if key not in t.table:
        return None
    return parse_distribution(t.table[key], f"{t.path.name}: {t.prefix}{key}")


def read_demand(top: _Table, buyers: int, regions: Sequence[RegionConfig]) -> DemandSpec:
    """``[demand]`` (defaults when absent) of a scenario with ``buyers`` spectrum buyers."""
    d = top.sub("demand", required=False)
    if not buyers:
        raise ScenarioError(
            f"{top.path.name}: demand: no one buys; set participants.uplink_buyers or "
            "participants.operator_buyers above 0, or remove [demand]"
        )
    for r in regions:
        if r.mechanism_rules.bid_shape is BidShape.BUNDLE:
            raise ScenarioError(
                f"{top.path.name}: demand: region {r.region_id} runs {r.mechanism!r}, which "
                "takes no spectrum-only bids; give it another mechanism or remove the buyers"
            )
    fixed = d.choice("arrivals", ("poisson", "fixed"), "poisson") == "fixed"
    return DemandSpec(
        load=d.float("load", 0.5, 0.0, MAX_LOAD),
        arrivals="fixed" if fixed else "poisson",
        backlog_epochs=d.int("backlog_epochs", 0, 0, MAX_BACKLOG_EPOCHS),
        max_waiting=d.int(
            "max_waiting", 1_024, 1, MAX_WAITING, "each waiting order is a bid every epoch"
        ),
        uplink_value=_distribution(d, "uplink_value"),
        operator_value=_distribution(d, "operator_value"),
    )


def read_reserves(r: _Table) -> Reserves:
    """``[reserves]``: a distribution per kind of seller, each optional."""
    return Reserves(*(_distribution(r, key) for key in RESERVE_KEYS))
