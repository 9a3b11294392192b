"""Spectrum buyers that are not a training job, and the backlog of their orders.

Two kinds, each homed in one region (round robin, like the sellers):

- :class:`UplinkBuyer`: an edge device buying uplink channels for its own traffic
  (registered as an edge device; any channel of the band carries it);
- :class:`OperatorBuyer`: a terrestrial operator buying satellite spectrum for its
  cells (registered as a terrestrial operator; it bids for the satellite band, the
  upper half of the narrowest region's band, where the region's mechanism lets a bid
  name a band — unit-demand auctions take one-channel bids over the whole band only,
  and there it takes whichever channel the auction hands it).

Every order is one channel for one epoch. :class:`DemandSide` makes them arrive
(``[demand] load``: :class:`~agents.demand.DemandSpec` defines it), keeps them waiting
until they win or grow too old (the backlog), and has each waiting order signed as a
bid through its buyer's :class:`~ledger.region.Trader` and handed to the region's
sequencer, like every other order: the mechanism clears it with the coordinators'
bids, the committee settles it on chain, and the buyer signs its lease's completion
(the seller is paid). Its figures per region-epoch go to ``metrics.csv``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ledger.mechanisms import BidShape
from ledger.records import Joiner, Kind, LeaseRecord, SignedBid, StepAction
from ledger.region import EpochOutcome, OrderRefused, RegionSequencer, StepRefused, Trader

from .demand import DemandSpec, Distribution, LogNormal, Uniform
from .roles import UNIT_WEI, Agent

__all__ = [
    "DEFAULT_OPERATOR_VALUE",
    "DEFAULT_UPLINK_VALUE",
    "DEMAND_FIELDS",
    "DemandSide",
    "OperatorBuyer",
    "SpectrumBuyer",
    "UplinkBuyer",
]

#: what a channel-epoch is worth to an edge device's own traffic, unless the scenario says
DEFAULT_UPLINK_VALUE: Distribution = LogNormal(median_wei=1.5 * UNIT_WEI, sigma=0.5)
#: and to a terrestrial operator offloading cells onto satellite spectrum
DEFAULT_OPERATOR_VALUE: Distribution = Uniform(low_wei=1.0 * UNIT_WEI, high_wei=3.0 * UNIT_WEI)
BUYER_DEPOSIT_WEI = 10**17  # escrow per buyer: 10**5 orders at a typical price
NOTES_PER_EPOCH = 3  # refusals noted per region and epoch; the rest are counted

#: the columns a region-epoch row gets in ``metrics.csv`` (empty without ``[demand]``)
DEMAND_FIELDS = [
    "capacity_channels",  # S: unprotected channels on offer in the region this epoch
    "arrivals",  # orders that arrived this epoch (about load x S)
    "turned_away",  # arrivals refused because max_waiting orders were already waiting
    "offered",  # orders that bid this epoch: the waiting ones and the arrivals
    "served",  # orders that won a lease this epoch
    "expired",  # orders that reached backlog_epochs unserved and were dropped
    "backlog",  # orders still waiting after this epoch (carried to the next)
]


@dataclass
class SpectrumBuyer(Agent):
    """A buyer of one-channel orders in its home region, valuing a channel anew each
    epoch; ``waiting`` holds each waiting order's arrival epoch, oldest first."""

    value: Distribution = DEFAULT_UPLINK_VALUE
    band: tuple[int, int] | None = None  # channels it wants, where a bid may name them
    deposit_wei: int = BUYER_DEPOSIT_WEI
    bond_wei: int = 0  # it sells nothing
    value_wei: int = 0  # this epoch's valuation of a channel
    waiting: list[int] = field(default_factory=list)
    _bidding: dict[int, int] = field(default_factory=dict)  # nonce -> arrival epoch

    @property
    def home(self) -> int:
        return self.regions[0]

    def joiner(self, region: int, trader: Trader) -> Joiner:
        """Its registration with its escrow deposit (buyers post no bond)."""
        self.traders[region] = trader
        return trader.joiner(self.role, deposit_wei=self.deposit_wei)

    def bids(self, sequencer: RegionSequencer, slot: int) -> list[tuple[int, SignedBid]]:
        """Each waiting order as a signed one-channel bid for ``slot`` at this epoch's
        valuation, as the region's mechanism takes it: (arrival epoch, signed bid)."""
        mechanism, channels = sequencer.mechanism, sequencer.config.num_channels
        lo, hi = 0, channels
        if mechanism is not None and mechanism.bid_shape is not BidShape.UNIT and self.band:
            lo, hi = max(0, self.band[0]), min(channels, self.band[1])
        window = sequencer.window(slot)
        trader = self.traders[self.home]
        return [
            (arrived, trader.bid(Kind.SPECTRUM, lo, hi, 1, *window, self.value_wei))
            for arrived in self.waiting
        ]


@dataclass
class UplinkBuyer(SpectrumBuyer):
    """An edge device's own uplink traffic: one channel anywhere in the band."""


@dataclass
class OperatorBuyer(SpectrumBuyer):
    """A terrestrial operator buying satellite spectrum (``band``: the satellite band)."""

    value: Distribution = DEFAULT_OPERATOR_VALUE


@dataclass
class _RegionEpoch:
    capacity_channels: int = 0
    arrivals: int = 0
    turned_away: int = 0
    offered: int = 0
    served: int = 0
    expired: int = 0
    backlog: int = 0


class DemandSide:
    """The buyers' orders across regions: arrivals, bids, what settled, expiries."""

    def __init__(
        self, spec: DemandSpec, buyers: list[SpectrumBuyer], rng: np.random.Generator
    ) -> None:
        self.spec = spec
        self.buyers = buyers
        self.rng = rng  # arrivals and valuations: its own, so the run's draws stay as they were
        self.carry: dict[int, float] = {}  # "fixed" arrivals: the fraction not yet arrived
        self.epoch: dict[int, _RegionEpoch] = {}
        self.totals = _RegionEpoch()  # over the run (backlog: the last epoch's, summed)

    @classmethod
    def of(
        cls, spec: DemandSpec | None, buyers: list[SpectrumBuyer], seed: int
    ) -> DemandSide | None:
        """The demand side of a scenario (None without ``[demand]``), with its own
        generator: turning demand on leaves every other draw of the run as it was."""
        return None if spec is None else cls(spec, buyers, np.random.default_rng([seed, 16]))

    def in_region(self, region: int) -> list[SpectrumBuyer]:
        return [b for b in self.buyers if b.home == region]

    # -- before the auction ----------------------------------------------------------------
    async def bid(
        self,
        epoch: int,
        slot: int,
        sequencers: Mapping[int, RegionSequencer],
        supply: Mapping[int, int],
        note: Callable[[str], None],
    ) -> int:
        """New orders arrive in every region in ``supply`` (region -> unprotected channels
        on offer; absent: the region is down), every buyer values a channel for this
        epoch, and every waiting order bids; returns the bids admitted."""
        self.epoch = {r: _RegionEpoch() for r in sequencers}
        for buyer in self.buyers:  # one draw per buyer and epoch, in a fixed order
            buyer.value_wei = buyer.value.draw(self.rng)
        admitted = 0
        for r in sorted(sequencers):
            stats = self.epoch[r]
            if r not in supply:  # down: nothing arrives, nothing bids; orders age
                continue
            live = [b for b in self.in_region(r) if b.alive(epoch)]
            stats.capacity_channels = supply[r]
            self._arrive(r, epoch, live, stats)
            refusals = 0
            for buyer in live:
                buyer._bidding.clear()
                for arrived, signed in buyer.bids(sequencers[r], slot):
                    stats.offered += 1
                    self.totals.offered += 1
                    try:
                        await sequencers[r].submit_bid(signed)
                    except OrderRefused as exc:
                        refusals += 1
                        if refusals <= NOTES_PER_EPOCH:
                            note(f"{buyer.name}: {exc.reason}")
                        continue
                    buyer._bidding[signed.bid.nonce] = arrived
                    admitted += 1
            if refusals > NOTES_PER_EPOCH:
                note(f"region {r}: {refusals} buyers' bids refused in all")
        return admitted

    def _arrive(
        self, region: int, epoch: int, live: list[SpectrumBuyer], stats: _RegionEpoch
    ) -> None:
        mean = self.spec.load * stats.capacity_channels
        if self.spec.arrivals == "fixed":
            due = self.carry.get(region, 0.0) + mean
            n = int(due)
            self.carry[region] = due - n
        else:
            n = int(self.rng.poisson(mean))
        stats.arrivals = n
        room = max(0, self.spec.max_waiting - sum(len(b.waiting) for b in self.in_region(region)))
        if not live:  # nobody here to want it
            room = 0
        stats.turned_away = max(0, n - room)
        self.totals.arrivals += n
        self.totals.turned_away += stats.turned_away
        if not n or not room:
            return
        for i in self.rng.integers(len(live), size=min(n, room)):
            live[int(i)].waiting.append(epoch)

    # -- after the auction ------------------------------------------------------------------
    def settled(
        self, epoch: int, outcomes: Mapping[int, EpochOutcome]
    ) -> dict[str, list[tuple[int, LeaseRecord]]]:
        """Orders that won leave the backlog, orders too old expire; returns each buyer's
        leases (name -> (region, lease)) for :meth:`close`."""
        leases: dict[str, list[tuple[int, LeaseRecord]]] = {}
        for stats in self.epoch.values():  # what bid() counted stays; this is counted now
            stats.served = stats.expired = 0
        for buyer in self.buyers:
            r = buyer.home
            stats = self.epoch.setdefault(r, _RegionEpoch())
            outcome = outcomes.get(r)
            address = buyer.traders[r].address if r in buyer.traders else ""
            won = [
                rec
                for rec in (outcome.leases if outcome is not None else [])
                if rec.buyer == address and rec.nonce in buyer._bidding
            ]
            for rec in won:
                buyer.waiting.remove(buyer._bidding.pop(rec.nonce))
            stats.served += len(won)
            self.totals.served += len(won)
            if won:
                leases[buyer.name] = [(r, rec) for rec in won]
            buyer._bidding.clear()
            keep = [a for a in buyer.waiting if epoch - a < self.spec.backlog_epochs]
            stats.expired += len(buyer.waiting) - len(keep)
            self.totals.expired += len(buyer.waiting) - len(keep)
            buyer.waiting = keep
        for r, stats in self.epoch.items():
            stats.backlog = sum(len(b.waiting) for b in self.in_region(r))
        self.totals.backlog = sum(len(b.waiting) for b in self.buyers)
        return leases

    def close(
        self,
        sequencers: Mapping[int, RegionSequencer],
        leases: Mapping[str, list[tuple[int, LeaseRecord]]],
        note: Callable[[str], None],
    ) -> None:
        """Each buyer signs the completion of its leases (the sellers are paid with the
        region's next settlement)."""
        for buyer in self.buyers:
            for r, rec in leases.get(buyer.name, []):
                try:
                    sequencers[r].steps.submit(buyer.traders[r].step(rec, StepAction.COMPLETE))
                except StepRefused as exc:
                    note(f"{buyer.name}: completion refused: {exc.reason}")

    def row(self, region: int) -> dict[str, int]:
        """The region's figures this epoch, for its ``metrics.csv`` row."""
        stats = self.epoch.get(region, _RegionEpoch())
        return {name: getattr(stats, name) for name in DEMAND_FIELDS}

    def summary(self) -> dict[str, int]:
        """The run's totals for ``summary.json`` (``backlog``: orders waiting at the end)."""
        return {name: getattr(self.totals, name) for name in DEMAND_FIELDS[1:]}
