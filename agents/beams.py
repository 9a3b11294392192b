"""Cross-region leases in a run: a satellite beam over several regions, bought whole or
not at all (``[cross_region]``).

A beam that covers several regions is worth something only in all of them at once (a
terrestrial operator backhauling cells on both sides of a border), so it is bought as
one cross-region lease (:class:`ledger.crossregion.CrossRegionLease`: prepare on the
root, every region's committee votes, commit or abort). Every ``every`` epochs, from
epoch 1, the first satellite operator offers the top ``channels`` channels of its band
in each region of ``regions`` for that epoch, at its reserve per channel, and a beam
buyer (a terrestrial operator with an escrow deposit in each of those regions) bids
for them at up to twice that; the part a region's committee commits settles with the
region's settlement of the epoch, and the buyer signs its completion (the satellite
is paid) like every other buyer.

The two-phase commit is what keeps one region's trouble in that region:

- a region whose channels are taken (or whose contract would refuse the part) votes
  abort, and the lease is aborted at once;
- a region that is down this epoch (an outage, or a node that stopped answering)
  never votes; the lease's deadline is the epoch's heartbeat time (a quarter into
  its slot), after which it is aborted on the root. The other regions released their
  reservation before settling, so their epoch settles as if the lease had not been
  proposed.

Either way the other regions' settlements go ahead in the same epoch; the audit's
``cross`` check then finds every committed lease active in all its regions and no
aborted one active in any. ``summary.json`` counts ``cross_region``: proposed,
committed, aborted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.crossregion import CrossRegionLease, Part
from ledger.errors import NODE_ERRORS
from ledger.records import CrossState, Joiner, Kind, LeaseRecord, StepAction
from ledger.region import EpochOutcome, StepRefused, Trader
from ledger.tiered import TieredLedger

from .cross_region import CrossRegionSpec
from .roles import Agent, SatelliteOperator

__all__ = ["BeamBuyer", "Beams"]

BEAM_DEPOSIT_WEI = 10**17  # escrow per region: far more than a beam's price


@dataclass
class BeamBuyer(Agent):
    """A terrestrial operator that buys a satellite beam in several regions at once."""

    bond_wei: int = 0  # it sells nothing
    deposit_wei: int = BEAM_DEPOSIT_WEI

    def joiner(self, region: int, trader: Trader) -> Joiner:
        self.traders[region] = trader
        return trader.joiner(self.role, deposit_wei=self.deposit_wei)


@dataclass
class Beams:
    """The run's cross-region leases: one proposed every ``spec.every`` epochs."""

    spec: CrossRegionSpec
    seller: SatelliteOperator
    buyer: BeamBuyer
    band_top: int  # the satellite band's upper end (exclusive), in every region
    counts: dict[str, int] = field(
        default_factory=lambda: {"proposed": 0, "committed": 0, "aborted": 0}
    )
    _open: dict[str, Any] = field(default_factory=dict)  # the epoch's lease, until finished

    def due(self, epoch: int) -> bool:
        return epoch >= 1 and (epoch - 1) % self.spec.every == 0

    async def propose(
        self,
        ledger: TieredLedger,
        epoch: int,
        slot: int,
        deadline: int,
        down: frozenset[int],
        note: Callable[[str], None],
    ) -> None:
        """Prepare this epoch's lease on the root and have every region that is up vote;
        a region in ``down`` does not answer. Before the regions settle."""
        if not self.due(epoch):
            return
        if not (self.seller.alive(epoch) and self.buyer.alive(epoch)):
            note("cross-region lease: not proposed, its seller or buyer has crashed")
            return
        lo = self.band_top - self.spec.channels
        price = self.seller.reserve_wei * self.spec.channels
        parts = {}
        for r in self.spec.regions:
            start, end = ledger.regions[r].sequencer.window(slot)
            offer = self.seller.traders[r].offer(
                Kind.SPECTRUM, lo, self.band_top, start, end, self.seller.reserve_wei
            )
            bid = self.buyer.traders[r].bid(
                Kind.SPECTRUM, lo, self.band_top, self.spec.channels, start, end, 2 * price
            )
            parts[r] = Part(offer, bid, lo, price)
        lease = CrossRegionLease(ledger, parts, deadline)
        await lease.prepare()
        self.counts["proposed"] += 1
        silent = []
        for r in self.spec.regions:
            if r in down:
                silent.append(r)
                continue
            try:
                if not await lease.vote(r):
                    note(f"cross-region lease: region {r} voted abort (its part would not settle)")
                    break
            except NODE_ERRORS as exc:
                silent.append(r)
                note(f"cross-region lease: region {r} did not vote: {type(exc).__name__}")
        if silent:  # held until the deadline, but settling this epoch without it
            for r in self.spec.regions:
                ledger.regions[r].sequencer.release(parts[r].lease())
            note(f"cross-region lease: regions {silent} are down; it aborts at its deadline")
        self._open = {"lease": lease, "epoch": epoch}
        if not silent:
            await self.finish()

    async def finish(self) -> None:
        """Commit or abort the epoch's lease; once the deadline has passed when a region
        never voted (the run calls it again after the heartbeat time)."""
        lease = self._open.get("lease")
        if lease is None:
            return
        if await lease.state() == CrossState.PREPARED:
            head = await lease.ledger.root_backend.web3.eth.get_block("latest")
            if int(head["timestamp"]) < lease.deadline:
                return  # a region never voted: abort once the deadline has passed
        state = await lease.finish()
        self.counts["committed" if state == CrossState.COMMITTED else "aborted"] += 1
        self._open = {}

    def close(
        self,
        sequencers: Mapping[int, Any],
        outcomes: Mapping[int, EpochOutcome],
        note: Callable[[str], None],
    ) -> None:
        """The buyer signs the completion of the parts that settled (the seller is paid)."""
        for r in self.spec.regions:
            outcome = outcomes.get(r)
            trader = self.buyer.traders.get(r)
            if outcome is None or trader is None:
                continue
            mine: list[LeaseRecord] = [rec for rec in outcome.leases if rec.buyer == trader.address]
            for rec in mine:
                try:
                    sequencers[r].steps.submit(trader.step(rec, StepAction.COMPLETE))
                except StepRefused as exc:
                    note(f"{self.buyer.name}: completion refused: {exc.reason}")
