"""Leases that span regions (a satellite beam over several regions): all or none.

Two-phase commit through the root chain:

1. **prepare** — the proposer records the lease on the root: its id, the hash of
   every region's part, the regions, and a deadline;
2. **vote** — each region's sequencer reserves its part (the channels are taken
   out of its order book) and its committee signs a commit vote on the root; a
   region that cannot reserve, or whose contract would refuse the part (its rules,
   ``ledger.region.rules``, against the chain as it is at the vote), votes abort;
3. **commit** — when every region has voted commit before the deadline the root
   marks the lease committed, and each region settles its part in its next epoch
   (the reservation guarantees it fits). A refusal, or a region that never
   answers by the deadline, aborts it: every reservation is released and no
   region ever activates its part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eth_utils import keccak

from .eip712 import quorum_sign
from .errors import LedgerError
from .records import CrossState, LeaseIn, SignedBid, SignedOffer
from .tiered import TieredLedger

__all__ = ["CrossRegionLease", "Part"]


@dataclass(frozen=True)
class Part:
    """One region's part of a cross-region lease: the seller's offer, the buyer's bid."""

    offer: SignedOffer
    bid: SignedBid
    first: int
    price_wei: int

    def lease(self) -> LeaseIn:
        """The lease this part settles as in its region."""
        return LeaseIn(
            self.offer.offer, self.offer.sig, self.bid.bid, self.bid.sig, self.first, self.price_wei
        )


class CrossRegionLease:
    """Drives one cross-region lease through prepare / vote / commit-or-abort."""

    def __init__(self, ledger: TieredLedger, parts: Mapping[int, Part], deadline: int) -> None:
        if len(parts) < 2:
            raise LedgerError("a cross-region lease spans at least two regions")
        self.ledger = ledger
        self.parts = dict(parts)
        self.deadline = deadline
        self.digests = [
            ledger.regions[r].market.bid_digest(p.bid.bid) for r, p in sorted(parts.items())
        ]
        record_hash = b"\0" * 32
        for digest in self.digests:  # chained as RootLedger.prepare_cross does
            record_hash = keccak(record_hash + digest)
        self.record_hash = record_hash
        self.xlease_id = keccak(b"xlease" + self.record_hash)

    async def prepare(self) -> None:
        await self.ledger.root.binding.transact(
            "prepare_cross",
            self.xlease_id,
            sorted(self.parts),
            self.digests,
            self.deadline,
            gas=600_000,
        )

    async def vote(self, region: int) -> bool:
        """Region ``region`` reserves its part and votes; returns whether it committed."""
        rt = self.ledger.regions[region]
        lease = self.parts[region].lease()
        await rt.sequencer.sync()  # the part must settle on the chain as it is now
        commit = rt.sequencer.settlement_problem(lease) is None and rt.sequencer.hold(lease)
        digest = self.ledger.root.vote_digest(self.xlease_id, region, commit)
        sigs = quorum_sign(digest, [v.key for v in rt.validators[: rt.config.threshold]])
        await self.ledger.root.binding.transact(
            "vote_cross", self.xlease_id, region, commit, [s.as_tuple() for s in sigs], gas=400_000
        )
        return commit

    async def state(self) -> CrossState:
        return await self.ledger.root.cross_state(self.xlease_id)

    async def finish(self) -> CrossState:
        """After the votes (or the deadline): abort if needed, then hand each region
        its part to settle (committed) or release its reservation (aborted)."""
        state = await self.state()
        if state == CrossState.PREPARED:
            await self.ledger.root.binding.transact("abort_cross", self.xlease_id, gas=200_000)
            state = CrossState.ABORTED
        for region, part in self.parts.items():
            sequencer = self.ledger.regions[region].sequencer
            if state == CrossState.COMMITTED:  # stays held until its epoch settles it
                sequencer.commit_part(part.lease())
            else:
                sequencer.release(part.lease())
        return state
