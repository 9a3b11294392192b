"""The sellers of a run, by role; each does its part of an epoch in :meth:`Agent.offers`.

Each agent has its own key, a seeded random generator, and a :class:`Trader`
on every region it works in. Sellers sign offers; the training job's buyer is
:class:`agents.coordinator.Coordinator`, the other spectrum buyers are
:mod:`agents.buyers`.

- :class:`SatelliteOperator`: its orbit gives it passes over the regions in turn;
  each pass yields one band offer for the pass's whole time window, signed once
  (a satellite cannot afford frequent interaction) and handed to the region's
  sequencer in every epoch of the pass.
- :class:`TerrestrialOperator`: a slice of its region's band, offered every epoch.
- :class:`EdgeServer`: compute for the frozen encoder (compute class ``SERVER``).
- :class:`EdgeDevice`: idle compute (class ``DEVICE``), a local data partition and a
  channel; the coordinator buys its compute and uplink spectrum for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ledger.records import Joiner, Kind, LeaseRecord, Role, SignedOffer, StepAction
from ledger.region import SignedStep, Trader

__all__ = [
    "DEVICE",
    "SERVER",
    "UNIT_WEI",
    "Agent",
    "EdgeDevice",
    "EdgeServer",
    "SatelliteOperator",
    "TerrestrialOperator",
]

UNIT_WEI = 10**12  # the scale of prices: one unit (channel or compute) for one epoch
DEVICE = 0  # compute class of an edge device's idle compute
SERVER = 1  # compute class of an edge server's encoder compute


@dataclass
class Agent:
    """Something with a key that acts on the ledger each epoch until it crashes."""

    name: str
    role: Role
    key: bytes
    regions: tuple[int, ...]
    rng: np.random.Generator
    crash_epoch: int | None = None
    traders: dict[int, Trader] = field(default_factory=dict)

    #: what a seller of this role posts as its bond when it joins a region
    bond_wei: int = 10**17

    def joiner(self, region: int, trader: Trader) -> Joiner:
        """Work on ``region`` through ``trader``: its signed registration, and the role's
        bond, for the region's ``join`` batch."""
        self.traders[region] = trader
        return trader.joiner(self.role, bond_wei=self.bond_wei)

    def alive(self, epoch: int) -> bool:
        return self.crash_epoch is None or epoch < self.crash_epoch

    def offers(self, epoch: int, region: int, window: tuple[int, int]) -> list[SignedOffer]:
        """The signed offers this agent hands to ``region``'s sequencer in ``epoch``."""
        return []


@dataclass
class TerrestrialOperator(Agent):
    lo: int = 0
    hi: int = 1
    reserve_wei: int = 10**12

    def offers(self, epoch: int, region: int, window: tuple[int, int]) -> list[SignedOffer]:
        if self.hi <= self.lo:
            return []
        return [
            self.traders[region].offer(Kind.SPECTRUM, self.lo, self.hi, *window, self.reserve_wei)
        ]


@dataclass
class SatelliteOperator(Agent):
    """Passes: region ``regions[(p // pass_epochs) % len]`` during epochs of pass p."""

    pass_epochs: int = 2
    lo: int = 0
    hi: int = 1
    reserve_wei: int = 10**12
    _signed: dict[tuple[int, int], SignedOffer] = field(default_factory=dict)
    signatures: int = 0

    def over(self, epoch: int) -> int:
        return self.regions[(epoch // self.pass_epochs) % len(self.regions)]

    def offers(self, epoch: int, region: int, window: tuple[int, int]) -> list[SignedOffer]:
        if self.over(epoch) != region or self.hi <= self.lo:
            return []
        first = epoch - epoch % self.pass_epochs
        key = (region, first)
        if key not in self._signed:  # one signature per pass, valid for all its epochs
            length = window[1] - window[0]
            start = window[0] - (epoch - first) * length
            self._signed[key] = self.traders[region].offer(
                Kind.SPECTRUM,
                self.lo,
                self.hi,
                start,
                start + self.pass_epochs * length,
                self.reserve_wei,
            )
            self.signatures += 1
        return [self._signed[key]]


@dataclass
class EdgeServer(Agent):
    capacity: int = 4
    reserve_wei: int = 2 * 10**12

    def offers(self, epoch: int, region: int, window: tuple[int, int]) -> list[SignedOffer]:
        return [
            self.traders[region].offer(
                Kind.COMPUTE, SERVER, self.capacity, *window, self.reserve_wei
            )
        ]


@dataclass
class EdgeDevice(Agent):
    index: int = 0  # its data partition in the trainer
    reserve_wei: int = 10**12
    resting_until: int = -1  # a device that dropped out rests an epoch, then comes back
    bond_wei: int = 10**16  # a device risks less than an operator

    def offers(self, epoch: int, region: int, window: tuple[int, int]) -> list[SignedOffer]:
        if epoch <= self.resting_until:
            return []
        return [self.traders[region].offer(Kind.COMPUTE, DEVICE, 1, *window, self.reserve_wei)]

    def heartbeat(self, region: int, lease: LeaseRecord, at: int) -> SignedStep:
        """Its signed proof, at ``at``, that it is working on ``lease`` (a device that
        dropped out sends none), for the region's lifecycle book."""
        return self.traders[region].step(lease, StepAction.HEARTBEAT, at)

    def rest(self, until_epoch: int) -> None:
        """Dropped out: offer nothing until after ``until_epoch``, then come back."""
        self.resting_until = until_epoch
