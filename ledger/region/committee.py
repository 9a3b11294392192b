"""A region's committee: each validator re-runs the mechanism and signs; a quorum settles.

Each :class:`Validator` re-runs the region's mechanism on the frozen book on
its own, checks the result against the contract's rules (:mod:`ledger.region.rules`:
an award that would make the settlement revert is dropped, with its reason, and the
rest settles) and signs the resulting settlement; :func:`settle_epoch` sends the
settlement only with ``t`` agreeing signatures — a validator that signs
something else is outvoted, and with fewer than ``t`` the epoch does not settle
and no funds move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from eth_account import Account

from ..bindings import MAX_LEASES, RegionMarket
from ..eip712 import Sig, sign_digest
from ..errors import LedgerError
from ..mechanisms import Allocation, Award, Book, Dropped, Mechanism, mechanism_by_id
from ..mechanisms.outcome import welfare_wei
from ..records import LeaseIn, LeaseRecord, Step, chain_leases_hash, chain_steps_hash
from .rules import check_leases
from .sequencer import FrozenBook

__all__ = ["EpochOutcome", "Validator", "settle_epoch"]


@dataclass
class EpochOutcome:
    """What happened to one region's epoch."""

    region: int
    epoch: int
    settled: bool
    leases: list[LeaseRecord] = field(default_factory=list)
    reason: str = ""
    signers: int = 0
    gas_used: int = 0
    clearing_price_wei: int = 0  # highest unit price paid, 0 when nothing traded
    welfare_wei: int = 0
    offered_units: int = 0
    tx_hash: str | None = None  # the transaction that sealed the epoch (its last part)
    parts: list[str] = field(default_factory=list)  # every settlement transaction, in order
    # the answer was lost and the chain could not be read: it may have settled (the
    # book is kept to rebuild the outcome when the chain answers again)
    unconfirmed: bool = False
    frozen: FrozenBook | None = field(default=None, repr=False, compare=False)
    # awards the committee's check of the contract's rules left out: (buyer, nonce, reason)
    dropped: list[Dropped] = field(default_factory=list)
    steps: tuple[Step, ...] = ()  # the lifecycle steps the settlement carried
    # the book the committee allocated from, for experiments that replay it
    # (agents/experiments/books.py); None when the epoch closed without one
    book: Book | None = field(default=None, repr=False, compare=False)


class Validator:
    """One committee member: re-runs the mechanism on its own and signs what it finds."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.address = Account.from_key(key).address

    def allocate(self, frozen: FrozenBook, mechanism: Mechanism) -> Allocation:
        return mechanism.allocate(frozen.book)

    def attest(
        self, frozen: FrozenBook, market: RegionMarket
    ) -> tuple[bytes, Sig, list[LeaseIn], Allocation]:
        """The leases this validator signs for ``frozen``: the mechanism's awards and the
        committed cross-region parts, less those the contract would refuse (the returned
        allocation keeps the awards signed and names the dropped ones with their reasons)."""
        mechanism = mechanism_by_id(frozen.mechanism_id)
        allocation = self.allocate(frozen, mechanism)
        awards: list[tuple[Award, LeaseIn]] = []
        dropped: list[Dropped] = []
        for a in allocation.awards:
            lease, problem = _lease_of(frozen, a)
            if lease is None:
                dropped.append(Dropped("", -1, problem))
            elif problem:
                dropped.append(Dropped(lease.bid.buyer, lease.bid.nonce, problem))
            else:
                awards.append((a, lease))
        # committed cross-region parts first: the root already counts on them
        extra = list(frozen.extra)
        kept, refused = check_leases(
            [*extra, *(lease for _, lease in awards)], frozen.state, market.domain
        )
        kept_extra = [lease for lease, ok in zip(extra, kept[: len(extra)], strict=True) if ok]
        kept_awards = [pair for pair, ok in zip(awards, kept[len(extra) :], strict=True) if ok]
        leases = [lease for _, lease in kept_awards] + kept_extra
        allocation = replace(
            allocation,
            awards=tuple(a for a, _ in kept_awards),
            dropped=(*allocation.dropped, *dropped, *refused),
        )
        records = [lease.record(frozen.epoch, frozen.region) for lease in leases]
        leases_hash = chain_leases_hash(records)
        digest = market.settlement_digest(
            frozen.epoch, frozen.root, leases_hash, chain_steps_hash(frozen.steps)
        )
        return leases_hash, sign_digest(self.key, digest), leases, allocation


def _lease_of(frozen: FrozenBook, a: Award) -> tuple[LeaseIn | None, str]:
    """The lease an award stands for, and why it cannot be one ("" when it can)."""
    if not (0 <= a.bid < len(frozen.bids) and 0 <= a.offer < len(frozen.offers)):
        return None, f"award names no such bid ({a.bid}) or offer ({a.offer}) in the book"
    offer, bid = frozen.offers[a.offer], frozen.bids[a.bid]
    lease = LeaseIn(offer.offer, offer.sig, bid.bid, bid.sig, a.first, a.price_wei)
    if a.units != bid.bid.units:  # the contract leases the bid's units, whatever the award says
        return lease, f"award of {a.units} units for a bid of {bid.bid.units}"
    return lease, ""


async def settle_epoch(
    market: RegionMarket, frozen: FrozenBook, validators: Sequence[Validator], threshold: int
) -> EpochOutcome:
    """Collect attestations; settle with ``threshold`` agreeing ones, or not at all."""
    attestations = [(v, *v.attest(frozen, market)) for v in validators]
    groups: dict[bytes, list[Any]] = {}
    for validator, leases_hash, sig, leases, allocation in attestations:
        groups.setdefault(leases_hash, []).append((validator, sig, leases, allocation))
    leases_hash, group = max(groups.items(), key=lambda kv: (len(kv[1]), kv[0]))
    outcome = EpochOutcome(
        frozen.region,
        frozen.epoch,
        settled=False,
        signers=len(group),
        offered_units=len(frozen.offers),
        book=frozen.book,
    )
    if len(group) < threshold:
        outcome.reason = (
            f"only {len(group)} of the {threshold} required validators agree on a result"
        )
        return outcome
    chosen = sorted(group[:threshold], key=lambda g: int(g[0].address, 16))
    leases, allocation = chosen[0][2], chosen[0][3]
    outcome.dropped = list(allocation.dropped)
    sigs = [g[1] for g in chosen]
    # more than MAX_LEASES winners: consecutive parts under the one signature; the epoch
    # seals with its last part, and a part that fails leaves it unsealed (void once the
    # next epoch settles: see RegionMarket's docstring)
    steps_hash = chain_steps_hash(frozen.steps)
    for start in range(0, max(len(leases), 1), MAX_LEASES):
        part = leases[start : start + MAX_LEASES]
        try:
            receipt = await market.settle(
                frozen.epoch,
                frozen.root,
                leases_hash,
                part,
                sigs,
                steps=frozen.steps if start == 0 else (),
                steps_hash=steps_hash,
            )
        except LedgerError as exc:
            if not outcome.parts:
                raise
            outcome.reason = (
                f"part {len(outcome.parts) + 1} of the settlement failed ({exc}); "
                f"the epoch stays unsealed and its {start} leases already sent are void"
            )
            return outcome
        outcome.parts.append(receipt.tx_hash)
        outcome.gas_used += receipt.gas_used
    outcome.settled = True
    outcome.steps = frozen.steps
    outcome.leases = [lease.record(frozen.epoch, frozen.region) for lease in leases]
    outcome.tx_hash = receipt.tx_hash
    outcome.welfare_wei = welfare_wei(frozen.book, allocation)
    outcome.clearing_price_wei = max((a.price_wei // a.units for a in allocation.awards), default=0)
    return outcome
