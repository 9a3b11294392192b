"""The run's upkeep: what no agent does for itself, done so that no lease is left over.

Anyone may expire a lease nobody claimed within its claim window after its end (its
locked price goes back to the buyer), or a lease of a void epoch (one whose last
settlement part never landed). A seller that dropped out, a coordinator whose
region was down when it would have completed: without this sweep their leases
would stay active, their price locked, for good.
"""

from __future__ import annotations

from ledger.errors import NODE_ERRORS
from ledger.records import LeaseState
from ledger.tiered import TieredLedger

from .outages import Outages

__all__ = ["expire_unclaimed"]


async def expire_unclaimed(ledger: TieredLedger, now: int, outages: Outages) -> int:
    """Expire, in every region that answers, the leases due as of ``now`` (by the
    sequencer's view of its chain); returns how many."""
    expired = 0
    for r, rt in ledger.regions.items():
        if r in outages.unanswered:
            continue
        view, window = rt.sequencer, rt.config.claim_window_s
        due = [
            record
            for lease_id, record in view.records.items()
            if view.lease_words[lease_id] & 0xFF == LeaseState.ACTIVE
            and (record.end + window <= now or record.epoch in view.void_epochs)
        ]
        for record in due:
            try:
                await rt.market.lifecycle("expire", record)
            except NODE_ERRORS as exc:
                outages.lost(r, exc)
                break
            expired += 1
    return expired
