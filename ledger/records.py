"""Pure records of the market: offers, bids, leases and their lifecycle states.

The dataclasses mirror the Vyper structs of ``RegionMarket`` field for field and
their hashes are computed here exactly as the contract computes them, so the
sequencers, committees, agents and auditors agree with the chain on every
digest. Nothing here talks to a chain: importing this module loads neither web3
nor eth-tester (tests/test_layers.py checks it), so mechanisms and agents can
reason about orders without a node.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from eth_utils import keccak

from .addresses import checksum_address
from .eip712 import BID_TYPE, LEASE_STEP_TYPE, OFFER_TYPE, Sig, abi_words, struct_hash

__all__ = [
    "COMMITTEE",
    "LEASE_ENDINGS",
    "NO_SIG",
    "Bid",
    "CrossState",
    "Joiner",
    "Kind",
    "LeaseIn",
    "LeaseRecord",
    "LeaseState",
    "Offer",
    "Role",
    "SignedBid",
    "SignedOffer",
    "Step",
    "StepAction",
    "chain_leases_hash",
    "chain_steps_hash",
    "channel_mask",
    "field_values",
    "lease_heartbeat",
    "lease_state_of",
    "lease_word",
    "step_message_hash",
    "with_heartbeat",
    "with_state",
]

_ZERO32 = b"\0" * 32


class Kind(enum.IntEnum):
    """What a lease is for."""

    SPECTRUM = 0  # contiguous channels of the region's grid, over time slots
    COMPUTE = 1  # units of an offer's compute capacity


class Role(enum.IntEnum):
    """A participant's registered role in a region."""

    SATELLITE = 1  # satellite operator: bands over regions during passes
    TERRESTRIAL = 2  # terrestrial operator: bands and edge-server compute
    EDGE_DEVICE = 3  # idle compute, local data, needs uplink bandwidth
    EDGE_SERVER = 4  # compute for the frozen encoder
    COORDINATOR = 5  # a training job's coordinator (buyer)


class LeaseState(enum.IntEnum):
    """A lease's lifecycle state, as the contract stores it."""

    NONE = 0  # never settled
    ACTIVE = 1  # settled; the price is locked
    COMPLETED = 2  # the seller was paid
    RELINQUISHED = 3  # the buyer ended it early; unused share refunded
    DEFAULTED = 4  # the seller missed heartbeats; buyer refunded, bond slashed
    EXPIRED = 5  # nobody claimed it after its end; buyer refunded


# A lease's storage word: the record hash's top 184 bits, the seller's last heartbeat
# in bits 8..71, the state in the low byte (contracts/RegionMarket.vy's docstring).
_STATE_MASK = 0xFF
_HEARTBEAT_MASK = ((1 << 64) - 1) << 8
_HASH_MASK = ((1 << 256) - 1) & ~(_STATE_MASK | _HEARTBEAT_MASK)


def lease_word(record_hash: bytes, state: int = 1, heartbeat: int = 0) -> int:
    """The word ``lease_word[lease_id]`` holds for a record with this hash."""
    return (int.from_bytes(record_hash, "big") & _HASH_MASK) | heartbeat << 8 | state


def lease_state_of(word: int) -> LeaseState:
    return LeaseState(word & _STATE_MASK)


def lease_heartbeat(word: int) -> int:
    """When the lease's seller last sent a heartbeat (0: never)."""
    return (word & _HEARTBEAT_MASK) >> 8


def with_state(word: int, state: int) -> int:
    return (word & ~_STATE_MASK) | state


def with_heartbeat(word: int, at: int) -> int:
    """The word after a seller's heartbeat at ``at`` (a later one only moves it on)."""
    if at <= lease_heartbeat(word):
        return word
    return (word & ~_HEARTBEAT_MASK) | at << 8


@dataclass(frozen=True)
class Offer:
    """A seller's signed offer: channels [lo, hi) or ``hi`` compute units, over [start, end)."""

    seller: str
    kind: int
    lo: int
    hi: int
    start: int
    end: int
    reserve_wei: int  # per unit (channel or compute unit) for the window
    nonce: int

    def struct_hash(self, region: int) -> bytes:
        return struct_hash(
            OFFER_TYPE,
            ["uint256", "address", *["uint256"] * 7],
            [
                region,
                self.seller,
                self.kind,
                self.lo,
                self.hi,
                self.start,
                self.end,
                self.reserve_wei,
                self.nonce,
            ],
        )

    def as_abi(self) -> tuple[Any, ...]:
        """The contract's Offer: the seller's address as a uint256 word (see RegionMarket)."""
        return (int(self.seller, 16), *field_values(self)[1:])

    @classmethod
    def from_abi(cls, raw: Sequence[Any]) -> Offer:
        return cls(_address(raw[0]), *raw[1:])


def _address(word: int) -> str:
    return checksum_address(word.to_bytes(20, "big"))


@dataclass(frozen=True)
class Bid:
    """A buyer's signed bid: ``units`` channels within [lo, hi) (or compute units)."""

    buyer: str
    kind: int
    lo: int
    hi: int
    units: int
    start: int
    end: int
    max_price_wei: int  # for the whole lease
    nonce: int  # each (buyer, nonce) settles at most once

    def struct_hash(self, region: int) -> bytes:
        return struct_hash(
            BID_TYPE,
            ["uint256", "address", *["uint256"] * 8],
            [
                region,
                self.buyer,
                self.kind,
                self.lo,
                self.hi,
                self.units,
                self.start,
                self.end,
                self.max_price_wei,
                self.nonce,
            ],
        )

    def lease_id(self) -> bytes:
        return keccak(abi_words(("address", "uint256"), (self.buyer, self.nonce)))

    def as_abi(self) -> tuple[Any, ...]:
        """The contract's Bid: the buyer's address as a uint256 word (see RegionMarket)."""
        return (int(self.buyer, 16), *field_values(self)[1:])

    @classmethod
    def from_abi(cls, raw: Sequence[Any]) -> Bid:
        return cls(_address(raw[0]), *raw[1:])


@dataclass(frozen=True)
class LeaseRecord:
    """A settled lease, as hashed into ``lease_word`` and emitted in LeaseActivated."""

    epoch: int
    kind: int
    seller: str
    buyer: str
    nonce: int
    first: int
    units: int
    start: int
    end: int
    price_wei: int
    offer_hash: bytes

    _TYPES = ("uint256", "uint256", "address", "address", *["uint256"] * 6, "bytes32")

    def record_hash(self) -> bytes:
        return keccak(abi_words(self._TYPES, field_values(self)))

    @property
    def lease_id(self) -> bytes:
        return keccak(abi_words(("address", "uint256"), (self.buyer, self.nonce)))

    def as_abi(self) -> tuple[Any, ...]:
        return field_values(self)

    @classmethod
    def from_abi(cls, raw: Sequence[Any]) -> LeaseRecord:
        """From eth_abi's decoding of the contract's LeaseRecord tuple."""
        epoch, kind, seller, buyer, nonce, first, units, start, end, price, offer_hash = raw
        return cls(
            epoch,
            kind,
            checksum_address(seller),
            checksum_address(buyer),
            nonce,
            first,
            units,
            start,
            end,
            price,
            bytes(offer_hash),
        )

    @classmethod
    def from_event(cls, args: dict[str, Any]) -> LeaseRecord:
        return cls(
            epoch=args["epoch"],
            kind=args["kind"],
            seller=checksum_address(args["seller"]),
            buyer=checksum_address(args["buyer"]),
            nonce=args["nonce"],
            first=args["first"],
            units=args["units"],
            start=args["start"],
            end=args["end"],
            price_wei=args["price_wei"],
            offer_hash=bytes(args["offer_hash"]),
        )


@dataclass(frozen=True)
class LeaseIn:
    """One lease of a settlement: the signed offer and bid, the channel and the price."""

    offer: Offer
    offer_sig: Sig
    bid: Bid
    bid_sig: Sig
    first: int
    price_wei: int

    def record(self, epoch: int, region: int) -> LeaseRecord:
        return LeaseRecord(
            epoch=epoch,
            kind=self.bid.kind,
            seller=self.offer.seller,
            buyer=self.bid.buyer,
            nonce=self.bid.nonce,
            first=self.first,
            units=self.bid.units,
            start=self.bid.start,
            end=self.bid.end,
            price_wei=self.price_wei,
            offer_hash=self.offer.struct_hash(region),
        )

    def as_abi(self) -> tuple[Any, ...]:
        return (
            self.offer.as_abi(),
            self.offer_sig.as_tuple(),
            self.bid.as_abi(),
            self.bid_sig.as_tuple(),
            self.first,
            self.price_wei,
        )


class StepAction(enum.IntEnum):
    """A lifecycle action, as ``RegionMarket``'s Step and LeaseStep messages name it."""

    NONE = 0  # a Step with the seller's heartbeat only
    HEARTBEAT = 1  # (in LeaseStep messages) a party is working: the seller's moves its deadline on
    COMPLETE = 2  # the buyer confirms (any time), or the seller claims after the end
    RELINQUISH = 3  # the buyer ends it early
    DEFAULT = 4  # the seller's heartbeat is overdue: refund, slash
    EXPIRE = 5  # nobody claimed it in the claim window, or its epoch is void


NO_SIG = Sig(0, _ZERO32, _ZERO32)
#: the party of a step the committee itself takes (a default it observed, an expiry)
COMMITTEE = "0x" + "00" * 20
_STEP_TAIL = ("uint256", "uint256", "uint256")


@dataclass(frozen=True)
class Step:
    """One lease's lifecycle steps in a committee batch, as the contract takes them:
    the seller's latest heartbeat (``heartbeat_at``, 0 for none) and one ``action``
    taken by ``party`` (:data:`COMMITTEE` for a default or an expiry the committee
    takes). The parties' signatures over their LeaseStep messages stay with the
    committee, which checked them (:mod:`ledger.region.lifecycle`)."""

    record: LeaseRecord
    heartbeat_at: int = 0
    action: int = StepAction.NONE
    party: str = COMMITTEE

    def words(self) -> bytes:
        """The step abi-encoded as the contract hashes it (every field one word)."""
        return abi_words(LeaseRecord._TYPES, field_values(self.record)) + abi_words(
            _STEP_TAIL, (self.heartbeat_at, int(self.action), int(self.party, 16))
        )

    def step_hash(self) -> bytes:
        return keccak(self.words())


def step_message_hash(region: int, lease_id: bytes, action: int, at: int = 0) -> bytes:
    """The hashStruct of the LeaseStep a party signs: a heartbeat (action HEARTBEAT, its
    time) or an action (``at`` 0)."""
    return struct_hash(
        LEASE_STEP_TYPE,
        ["uint256", "bytes32", "uint256", "uint256"],
        [region, lease_id, int(action), at],
    )


def chain_steps_hash(steps: Sequence[Step]) -> bytes:
    """h_0 = 0, h_i = keccak(h_{i-1} ++ keccak(step_i)): what the quorum signs for steps."""
    h = _ZERO32
    for step in steps:
        h = keccak(h + step.step_hash())
    return h


@dataclass(frozen=True)
class Joiner:
    """One participant of a ``join`` batch: registered (with its own signature over
    its Registration; role 0: already registered), funded and bonded by the sender."""

    who: str
    role: int
    deposit_wei: int
    bond_wei: int
    sig: Sig = NO_SIG

    def as_abi(self) -> tuple[Any, ...]:
        return (int(self.who, 16), self.role, self.deposit_wei, self.bond_wei, self.sig.as_tuple())


class CrossState(enum.IntEnum):
    """A cross-region lease's state on the root chain."""

    NONE = 0  # never prepared
    PREPARED = 1  # waiting for every region's committee
    COMMITTED = 2  # every region reserved its part: active everywhere
    ABORTED = 3  # a region refused, or the deadline passed: active nowhere


#: the market events that end a lease, and the state each leaves it in
LEASE_ENDINGS = {
    "LeaseCompleted": LeaseState.COMPLETED,
    "LeaseRelinquished": LeaseState.RELINQUISHED,
    "LeaseDefaulted": LeaseState.DEFAULTED,
    "LeaseExpired": LeaseState.EXPIRED,
}

_GETTERS: dict[type, Any] = {}


def field_values(obj: Any) -> tuple[Any, ...]:
    """A flat dataclass's field values in order (``astuple`` deep-copies every value)."""
    getter = _GETTERS.get(type(obj))
    if getter is None:
        getter = _GETTERS[type(obj)] = attrgetter(*(f.name for f in fields(obj)))
    return getter(obj)  # type: ignore[no-any-return]


def chain_leases_hash(records: Sequence[LeaseRecord], start: bytes = _ZERO32) -> bytes:
    """h_0 = 0, h_i = keccak(h_{i-1} ++ record_hash_i): what the committee signs.
    ``start``: the chain so far, for the next part of an epoch settled in parts."""
    h = start
    for record in records:
        h = keccak(h + record.record_hash())
    return h


def channel_mask(first: int, units: int) -> int:
    """The bitmap of channels ``first .. first + units - 1``: the one formula for every
    occupancy, reservation, protected-band and overlap check (sequencer, cross-region
    leases, audit)."""
    return ((1 << units) - 1) << first


@dataclass(frozen=True)
class SignedOffer:
    """An offer with its seller's EIP-712 signature, as it reaches a sequencer."""

    offer: Offer
    sig: Sig


@dataclass(frozen=True)
class SignedBid:
    """A bid with its buyer's EIP-712 signature, as it reaches a sequencer."""

    bid: Bid
    sig: Sig
