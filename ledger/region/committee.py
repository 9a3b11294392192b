"""A region's committee: each validator re-runs the mechanism and signs; a quorum settles.

Each :class:`Validator` re-runs the region's mechanism on the frozen book on
its own and signs the resulting settlement; :func:`settle_epoch` sends the
settlement only with ``t`` agreeing signatures — a validator that signs
something else is outvoted, and with fewer than ``t`` the epoch does not settle
and no funds move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account

from ..bindings import RegionMarket
from ..eip712 import Sig, sign_digest
from ..mechanisms import Allocation, Mechanism, mechanism_by_id
from ..records import LeaseIn, LeaseRecord, chain_leases_hash
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
    tx_hash: str | None = None


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
        mechanism = mechanism_by_id(frozen.mechanism_id)
        allocation = self.allocate(frozen, mechanism)
        leases = [
            LeaseIn(
                frozen.offers[a.offer].offer,
                frozen.offers[a.offer].sig,
                frozen.bids[a.bid].bid,
                frozen.bids[a.bid].sig,
                a.first,
                a.price_wei,
            )
            for a in allocation.awards
        ]
        leases.extend(frozen.extra)
        records = [lease.record(frozen.epoch, frozen.region) for lease in leases]
        leases_hash = chain_leases_hash(records)
        digest = market.settlement_digest(frozen.epoch, frozen.root, leases_hash)
        return leases_hash, sign_digest(self.key, digest), leases, allocation


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
    )
    if len(group) < threshold:
        outcome.reason = (
            f"only {len(group)} of the {threshold} required validators agree on a result"
        )
        return outcome
    chosen = sorted(group[:threshold], key=lambda g: int(g[0].address, 16))
    leases, allocation = chosen[0][2], chosen[0][3]
    receipt = await market.settle(frozen.epoch, frozen.root, leases, [g[1] for g in chosen])
    outcome.settled = True
    outcome.leases = [lease.record(frozen.epoch, frozen.region) for lease in leases]
    outcome.gas_used = receipt.gas_used
    outcome.tx_hash = receipt.tx_hash
    outcome.welfare_wei = allocation.welfare_wei(frozen.book)
    outcome.clearing_price_wei = max((a.price_wei // a.units for a in allocation.awards), default=0)
    return outcome
