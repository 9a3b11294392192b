"""What a settlement whose answer was lost did: the chain tells.

A settlement's answer can be lost while the transaction landed (a timeout, a node
that dropped the connection after taking it, a worker process stopped late). The
region's sequencer then asks its chain: the epoch's ``Settled`` event and the
leases it sealed rebuild the outcome (:func:`found_on_chain`). When the chain
cannot be read either, the outcome stays ``unconfirmed`` with its book, and
:func:`reconcile` settles the doubt once the chain answers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..errors import LedgerError
from .committee import EpochOutcome
from .sequencer import FrozenBook
from .view import RegionView

__all__ = ["found_on_chain", "reconcile", "recover"]

#: what reading a chain that is gone raises
CHAIN_ERRORS: tuple[type[BaseException], ...] = (LedgerError, OSError, TimeoutError)


async def recover(
    view: RegionView, frozen: FrozenBook, outcome: EpochOutcome, timeout_s: float
) -> EpochOutcome:
    """``outcome`` (not settled, as far as its sender knows) as the chain tells it."""
    try:
        async with asyncio.timeout(timeout_s):
            await view.sync()
    except CHAIN_ERRORS:
        outcome.unconfirmed, outcome.frozen = True, frozen
        return outcome
    found_on_chain(view, frozen, outcome)
    return outcome


async def reconcile(
    view: RegionView, outcomes: Sequence[EpochOutcome], timeout_s: float = 10.0
) -> list[EpochOutcome]:
    """Settle the doubt of every ``unconfirmed`` outcome once the chain answers again
    (raises what reading it raises when it does not); returns those found settled."""
    doubtful = [o for o in outcomes if o.unconfirmed]
    if not doubtful:
        return []
    async with asyncio.timeout(timeout_s):
        await view.sync()
    found = []
    for outcome in doubtful:
        frozen, outcome.unconfirmed, outcome.frozen = outcome.frozen, False, None
        if frozen is not None and found_on_chain(view, frozen, outcome):
            found.append(outcome)
    return found


def found_on_chain(view: RegionView, frozen: FrozenBook, outcome: EpochOutcome) -> bool:
    """Whether ``frozen``'s epoch is sealed on the chain ``view`` has followed; if so,
    ``outcome`` becomes what the settlement did (its leases, transactions, prices), for
    a settlement whose answer was lost although it landed."""
    sealed = next(
        (
            e
            for e in view.index.events
            if e.name == "Settled" and int(e.args["epoch"]) == frozen.epoch
        ),
        None,
    )
    if sealed is None:
        return False
    leases = [r for r in view.records.values() if r.epoch == frozen.epoch]
    parts = {
        e.tx_hash: None
        for e in view.index.events
        if e.name in ("SettlementPart", "Settled") and int(e.args["epoch"]) == frozen.epoch
    }
    bids = {(b.bid.buyer, b.bid.nonce): b.bid for b in frozen.bids}
    reserves = {o.offer.struct_hash(frozen.region): o.offer.reserve_wei for o in frozen.offers}
    outcome.settled = True
    outcome.reason = f"its answer was lost ({outcome.reason}); found on chain"
    outcome.leases = leases
    outcome.parts = list(parts)
    outcome.tx_hash = sealed.tx_hash
    outcome.signers = int(sealed.args["signers"])
    outcome.clearing_price_wei = max((r.price_wei // r.units for r in leases), default=0)
    outcome.welfare_wei = sum(
        bids[(r.buyer, r.nonce)].max_price_wei - reserves.get(r.offer_hash, 0) * r.units
        for r in leases
        if (r.buyer, r.nonce) in bids
    )
    return True
