"""The contract's settlement rules, checked before a validator signs.

``RegionMarket.settle`` reverts as a whole when one lease breaks one rule of
``_activate``, and the epoch is lost for every honest lease with it. So each
validator runs :func:`check_leases` on the leases it is about to sign: every rule
``_activate`` asserts, in its order and with its revert string (a test holds each one
against the contract), against :class:`ChainState` — what the sequencer's view of the
chain knew when the book was frozen — plus what the earlier leases of the same
settlement take (channels, compute units, escrow, nonces). A lease that breaks a rule is
dropped with the rule's reason; the others settle. The check is deterministic and reads
only the frozen book, so every honest validator keeps and drops the same leases.

Pure but for keccak and signature recovery: no chain is read here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..eip712 import Sig, typed_digest
from ..mechanisms import Dropped
from ..records import Kind, LeaseIn, Offer, Role, channel_mask
from .fields import UINT256, lease_problem, signer

__all__ = ["MAX_SLOTS", "SELLER_ROLES", "ChainState", "Standing", "check_leases"]

MAX_SLOTS = 64  # the contract's MAX_SLOTS: the longest lease, in slots
SELLER_ROLES = frozenset({Role.SATELLITE, Role.TERRESTRIAL, Role.EDGE_DEVICE, Role.EDGE_SERVER})


@dataclass(frozen=True)
class Standing:
    """A participant as the contract sees it: role, bond, and when its bond exit matures
    (0: none requested)."""

    role: int = 0
    bond_wei: int = 0
    exit_at: int = 0

    def seller_problem(self, min_bond_wei: int) -> str | None:
        """Why the contract (or admission) does not take this participant's offers; each
        reason starts with the contract's revert string."""
        seller = self.role in SELLER_ROLES
        if self.bond_wei < min_bond_wei or not seller:  # only a seller can post a bond
            why = (
                f"{self.bond_wei} wei posted, {min_bond_wei} wei required"
                if seller
                else "not registered as a seller"
            )
            return f"seller bond below minimum ({why})"
        if self.exit_at != 0:
            return "seller is leaving (bond exit pending)"
        return None


@dataclass(frozen=True)
class ChainState:
    """What the settlement rules read from the chain, as of the book's freezing: the
    region's configuration, and the state of the accounts, nonces, slots and compute
    offers that the book's orders name (nothing else is needed to check them)."""

    region: int
    num_channels: int
    protected_mask: int
    epoch_length_s: int
    min_bond_wei: int
    now: int = 0  # the head block's timestamp at the last sync: a lower bound for settle's
    free: Mapping[str, int] = field(default_factory=dict)
    standing: Mapping[str, Standing] = field(default_factory=dict)
    used_nonces: frozenset[tuple[str, int]] = frozenset()
    occupied: Mapping[int, int] = field(default_factory=dict)  # slot -> settled channels
    sold: Mapping[bytes, int] = field(default_factory=dict)  # compute offer hash -> units


class _Settlement:
    """One settlement's leases, checked in order; a lease that passes takes its share."""

    def __init__(self, state: ChainState, domain: bytes) -> None:
        self.state = state
        self.domain = domain
        self.occupied: dict[int, int] = {}
        self.sold: dict[bytes, int] = {}
        self.spent: dict[str, int] = {}
        self.nonces: set[tuple[str, int]] = set()
        self.offers: dict[tuple[bytes, Sig], str | None] = {}  # (hash, sig) -> why not

    def _offer_problem(self, offer: Offer, sig: Sig, offer_hash: bytes) -> str | None:
        key = (offer_hash, sig)
        if key not in self.offers:
            problem = None
            if signer(typed_digest(self.domain, offer_hash), sig) != offer.seller:
                problem = "offer not signed by its seller"
            else:
                standing = self.state.standing.get(offer.seller, Standing())
                problem = standing.seller_problem(self.state.min_bond_wei)
            self.offers[key] = problem
        return self.offers[key]

    def take(self, lease: LeaseIn) -> str | None:
        """Why the contract would revert on ``lease`` after the leases taken so far, or
        None — and then the lease is taken (its channels, units, escrow and nonce)."""
        shape = lease_problem(lease)
        if shape is not None:
            return f"malformed lease: {shape}"
        st, o, b = self.state, lease.offer, lease.bid
        if o.kind != b.kind:
            return "offer and bid are for different resources"
        if b.units == 0:
            return "bid for zero units"
        if b.start >= b.end:
            return "empty lease window"
        if b.end <= st.now:
            return "lease window already over"
        if not (o.start <= b.start and b.end <= o.end):
            return "lease window outside the offer"
        if lease.price_wei > b.max_price_wei:
            return "price above the bid's maximum"
        if o.reserve_wei * b.units >= UINT256:
            return "the offer's reserve times the units overflows uint256"
        if lease.price_wei < o.reserve_wei * b.units:
            return "price below the offer's reserve"
        offer_hash = o.struct_hash(st.region)
        problem = self._offer_problem(o, lease.offer_sig, offer_hash)
        if problem is not None:
            return problem
        bid_digest = typed_digest(self.domain, b.struct_hash(st.region))
        if signer(bid_digest, lease.bid_sig) != b.buyer:
            return "bid not signed by its buyer"
        nonce = (b.buyer, b.nonce)
        if nonce in st.used_nonces or nonce in self.nonces:
            return "bid nonce already used"
        if o.kind == Kind.SPECTRUM:
            problem, slots, mask = self._spectrum(lease)
            if problem is not None:
                return problem
        elif o.kind == Kind.COMPUTE:
            if lease.first != 0:
                return "compute leases have no channel"
            if b.lo != o.lo:
                return "compute class differs"
            sold = st.sold.get(offer_hash, 0) + self.sold.get(offer_hash, 0) + b.units
            if sold > o.hi:
                return "compute offer sold beyond capacity"
        else:
            return "unknown resource kind"
        spent = self.spent.get(b.buyer, 0) + lease.price_wei
        if st.free.get(b.buyer, 0) < spent:
            return "buyer's free balance below price"
        # every rule holds: the lease takes its share of the settlement
        self.spent[b.buyer] = spent
        self.nonces.add(nonce)
        if o.kind == Kind.SPECTRUM:
            for slot in slots:
                self.occupied[slot] = self.occupied.get(slot, 0) | mask
        else:
            self.sold[offer_hash] = self.sold.get(offer_hash, 0) + b.units
        return None

    def _spectrum(self, lease: LeaseIn) -> tuple[str | None, range, int]:
        st, o, b, first = self.state, lease.offer, lease.bid, lease.first
        end = first + b.units
        none = range(0)
        if first < o.lo or end > o.hi:
            return "channels outside the offer", none, 0
        if first < b.lo or end > b.hi:
            return "channels outside the bid", none, 0
        if end > st.num_channels:
            return "channels outside the region", none, 0
        mask = channel_mask(first, b.units)
        if mask & st.protected_mask:
            return "lease touches a protected band", none, 0
        length = st.epoch_length_s
        if b.start % length or b.end % length:
            return "window not slot-aligned", none, 0
        slots = range(b.start // length, b.end // length)
        if len(slots) > MAX_SLOTS:
            return "lease longer than MAX_SLOTS", none, 0
        for slot in slots:
            if (st.occupied.get(slot, 0) | self.occupied.get(slot, 0)) & mask:
                return "spectrum lease overlaps another", none, 0
        return None, slots, mask


def _who(lease: Any) -> tuple[str, int]:
    bid = getattr(lease, "bid", None)
    buyer, nonce = getattr(bid, "buyer", ""), getattr(bid, "nonce", -1)
    return (
        buyer if isinstance(buyer, str) else repr(buyer),
        nonce if type(nonce) is int else -1,
    )


def check_leases(
    leases: Sequence[LeaseIn], state: ChainState, domain: bytes
) -> tuple[list[bool], list[Dropped]]:
    """Which of ``leases``, taken in this order, the contract accepts together (a lease
    that breaks a rule is left out and takes nothing), and why each other one is not.

    ``domain``: the market's EIP-712 domain separator, for the orders' digests. The
    result does not depend on the order of the kept leases (each rule is per lease or a
    sum), so they may be sent in another order than checked."""
    settlement = _Settlement(state, domain)
    kept: list[bool] = []
    dropped: list[Dropped] = []
    for lease in leases:
        problem = settlement.take(lease)
        kept.append(problem is None)
        if problem is not None:
            dropped.append(Dropped(*_who(lease), problem))
    return kept, dropped
