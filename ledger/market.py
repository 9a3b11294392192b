"""Typed records and bindings for the ``RegionMarket`` and ``RootLedger`` contracts.

The dataclasses mirror the Vyper structs field for field; their hashes are
computed here exactly as the contracts compute them, so the off-chain code
(sequencers, committees, auditors) and the chain agree on every digest.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_utils import keccak, to_canonical_address, to_checksum_address

from .addresses import checksum_address
from .client import ContractBinding, LedgerClient, Receipt
from .eip712 import (
    BID_TYPE,
    CHECKPOINT_TYPE,
    MECHANISM_TYPE,
    OFFER_TYPE,
    REGION_TYPE,
    ROTATION_TYPE,
    SETTLEMENT_TYPE,
    VOTE_TYPE,
    Sig,
    abi_words,
    domain_separator,
    sign_digest,
    struct_hash,
    typed_digest,
)
from .errors import ConfigError

__all__ = [
    "Bid",
    "CrossState",
    "Kind",
    "LeaseIn",
    "LeaseRecord",
    "LeaseState",
    "MarketConfig",
    "Offer",
    "RegionMarket",
    "Role",
    "RootLedger",
    "chain_leases_hash",
    "quorum_sign",
]

MARKET_DOMAIN = "specledger RegionMarket"
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
        return (int(self.seller, 16), *_values(self)[1:])

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
        return (int(self.buyer, 16), *_values(self)[1:])

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
        return keccak(abi_words(self._TYPES, _values(self)))

    @property
    def lease_id(self) -> bytes:
        return keccak(abi_words(("address", "uint256"), (self.buyer, self.nonce)))

    def as_abi(self) -> tuple[Any, ...]:
        return _values(self)

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


_SIG_TYPES = ("uint256", "bytes32", "bytes32")
# LeaseIn as the contract takes it: Offer (8 words), Sig, Bid (9 words), Sig, first, price
_LEASE_TYPES = (*["uint256"] * 8, *_SIG_TYPES, *["uint256"] * 9, *_SIG_TYPES, "uint256", "uint256")
_LEASE_WORDS = len(_LEASE_TYPES)

_GETTERS: dict[type, Any] = {}


def _values(obj: Any) -> tuple[Any, ...]:
    """A flat dataclass's field values in order (``astuple`` deep-copies every value)."""
    getter = _GETTERS.get(type(obj))
    if getter is None:
        getter = _GETTERS[type(obj)] = attrgetter(*(f.name for f in fields(obj)))
    return getter(obj)  # type: ignore[no-any-return]


def chain_leases_hash(records: Sequence[LeaseRecord]) -> bytes:
    """h_0 = 0, h_i = keccak(h_{i-1} ++ record_hash_i): what the committee signs."""
    h = _ZERO32
    for record in records:
        h = keccak(h + record.record_hash())
    return h


def quorum_sign(digest: bytes, keys: Sequence[bytes]) -> list[Sig]:
    """Signatures of ``keys`` over ``digest``, ordered by signer address as the contracts want."""
    ordered = sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))
    return [sign_digest(k, digest) for k in ordered]


@dataclass(frozen=True)
class MarketConfig:
    """A region market's constructor arguments, validated on construction."""

    region_id: int
    committee: tuple[str, ...]
    threshold: int
    mechanism_id: int = 0
    mechanism_params_hash: bytes = _ZERO32
    spectrum_low_hz: int = 3_550_000_000
    channel_width_hz: int = 10_000_000
    num_channels: int = 16
    protected_mask: int = 0
    epoch_length_s: int = 60
    heartbeat_interval_s: int = 120
    claim_window_s: int = 600
    min_bond_wei: int = 10**15

    def __post_init__(self) -> None:
        if not 1 <= self.num_channels <= 256:
            raise ConfigError(f"num_channels must be 1..256, got {self.num_channels}")
        if not 1 <= self.threshold <= len(self.committee):
            raise ConfigError(
                f"threshold must be 1..{len(self.committee)} (committee size), got {self.threshold}"
            )
        if self.epoch_length_s <= 0:
            raise ConfigError(f"epoch_length_s must be positive, got {self.epoch_length_s}")
        if self.channel_width_hz <= 0:
            raise ConfigError(f"channel_width_hz must be positive, got {self.channel_width_hz}")

    def constructor_args(self) -> list[Any]:
        return [
            self.region_id,
            list(self.committee),
            self.threshold,
            self.mechanism_id,
            self.mechanism_params_hash,
            self.spectrum_low_hz,
            self.channel_width_hz,
            self.num_channels,
            self.protected_mask,
            self.epoch_length_s,
            self.heartbeat_interval_s,
            self.claim_window_s,
            self.min_bond_wei,
        ]


class RegionMarket:
    """Typed binding of one deployed ``RegionMarket``."""

    def __init__(self, binding: ContractBinding, region_id: int, chain_id: int) -> None:
        self.binding = binding
        self.address = binding.address
        self.region_id = region_id
        self.chain_id = chain_id
        self.domain = domain_separator(MARKET_DOMAIN, chain_id, binding.address)

    @classmethod
    async def deploy(cls, client: LedgerClient, config: MarketConfig) -> RegionMarket:
        binding = await client.deploy("RegionMarket", *config.constructor_args(), gas=6_000_000)
        return cls(binding, config.region_id, await client.chain_id())

    def as_client(self, client: LedgerClient) -> RegionMarket:
        """The same market seen (and signed for) by another account."""
        return RegionMarket(
            client.bind(self.binding.artifact, self.address), self.region_id, self.chain_id
        )

    # -- digests and signatures -------------------------------------------------------------
    def offer_digest(self, offer: Offer) -> bytes:
        return typed_digest(self.domain, offer.struct_hash(self.region_id))

    def bid_digest(self, bid: Bid) -> bytes:
        return typed_digest(self.domain, bid.struct_hash(self.region_id))

    def sign_offer(self, key: bytes, offer: Offer) -> Sig:
        return sign_digest(key, self.offer_digest(offer))

    def sign_bid(self, key: bytes, bid: Bid) -> Sig:
        return sign_digest(key, self.bid_digest(bid))

    def settlement_digest(self, epoch: int, orderbook_root: bytes, leases_hash: bytes) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(
                SETTLEMENT_TYPE,
                ["uint256", "uint256", "bytes32", "bytes32"],
                [self.region_id, epoch, orderbook_root, leases_hash],
            ),
        )

    def rotation_digest(self, members: Sequence[str], threshold: int, config_nonce: int) -> bytes:
        members_hash = keccak(encode(["address[]"], [[to_canonical_address(m) for m in members]]))
        return typed_digest(
            self.domain,
            struct_hash(
                ROTATION_TYPE,
                ["uint256", "bytes32", "uint256", "uint256"],
                [self.region_id, members_hash, threshold, config_nonce],
            ),
        )

    def mechanism_digest(self, mechanism_id: int, params_hash: bytes, config_nonce: int) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(
                MECHANISM_TYPE,
                ["uint256", "uint256", "bytes32", "uint256"],
                [self.region_id, mechanism_id, params_hash, config_nonce],
            ),
        )

    # -- transactions ------------------------------------------------------------------------
    async def register(self, role: Role) -> Receipt:
        return await self.binding.transact("register", int(role), gas=120_000)

    async def deposit(self, amount_wei: int) -> Receipt:
        return await self.binding.transact("deposit", value=amount_wei, gas=120_000)

    async def withdraw(self, amount_wei: int) -> Receipt:
        return await self.binding.transact("withdraw", amount_wei, gas=150_000)

    async def post_bond(self, amount_wei: int) -> Receipt:
        return await self.binding.transact("post_bond", value=amount_wei, gas=120_000)

    async def settle(
        self,
        epoch: int,
        orderbook_root: bytes,
        leases: Sequence[LeaseIn],
        sigs: Sequence[Sig],
        gas: int | None = None,
    ) -> Receipt:
        if gas is None:
            gas = 400_000 + 80_000 * len(leases)
        data = self.settle_calldata(epoch, orderbook_root, leases, sigs)
        return await self.binding.send_calldata(data, gas=gas)

    def settle_calldata(
        self, epoch: int, orderbook_root: bytes, leases: Sequence[LeaseIn], sigs: Sequence[Sig]
    ) -> bytes:
        """``settle``'s calldata, packed word by word: every field of its structs is one
        32-byte word, so each array is its length and then its elements' words in order
        (a test checks it against eth_abi, which took 0.1 ms a lease)."""
        head = abi_words(
            ("uint256", "bytes32", "uint256", "uint256"),
            (epoch, orderbook_root, 4 * 32, 5 * 32 + len(leases) * _LEASE_WORDS * 32),
        )
        parts = [self.binding.selector("settle"), head, len(leases).to_bytes(32, "big")]
        for lease in leases:
            o, b = lease.offer, lease.bid
            parts.append(
                abi_words(
                    _LEASE_TYPES,
                    (
                        int(o.seller, 16),
                        *_values(o)[1:],
                        *lease.offer_sig.as_tuple(),
                        int(b.buyer, 16),
                        *_values(b)[1:],
                        *lease.bid_sig.as_tuple(),
                        lease.first,
                        lease.price_wei,
                    ),
                )
            )
        parts.append(len(sigs).to_bytes(32, "big"))
        parts.extend(abi_words(_SIG_TYPES, s.as_tuple()) for s in sigs)
        return b"".join(parts)

    async def lifecycle(self, action: str, record: LeaseRecord) -> Receipt:
        """``heartbeat``, ``complete``, ``relinquish``, ``report_default`` or ``expire``."""
        if action not in ("heartbeat", "complete", "relinquish", "report_default", "expire"):
            raise ConfigError(f"unknown lease action {action!r}")
        return await self.binding.transact(action, record.as_abi(), gas=200_000)

    async def lease_state(self, lease_id: bytes) -> LeaseState:
        return LeaseState(await self.binding.call("lease_state", lease_id))

    async def escrow_conserved(self) -> bool:
        return bool(await self.binding.call("escrow_conserved"))


ROOT_DOMAIN = "specledger RootLedger"


class CrossState(enum.IntEnum):
    """A cross-region lease's state on the root chain."""

    NONE = 0  # never prepared
    PREPARED = 1  # waiting for every region's committee
    COMMITTED = 2  # every region reserved its part: active everywhere
    ABORTED = 3  # a region refused, or the deadline passed: active nowhere


class RootLedger:
    """Typed binding of the deployed ``RootLedger`` (the tier-0 chain)."""

    def __init__(self, binding: ContractBinding, chain_id: int) -> None:
        self.binding = binding
        self.address = binding.address
        self.chain_id = chain_id
        self.domain = domain_separator(ROOT_DOMAIN, chain_id, binding.address)

    @classmethod
    async def deploy(
        cls, client: LedgerClient, members: Sequence[str], threshold: int
    ) -> RootLedger:
        if not 1 <= threshold <= len(members):
            raise ConfigError(f"root threshold must be 1..{len(members)}, got {threshold}")
        binding = await client.deploy("RootLedger", list(members), threshold, gas=6_000_000)
        return cls(binding, await client.chain_id())

    def as_client(self, client: LedgerClient) -> RootLedger:
        return RootLedger(client.bind(self.binding.artifact, self.address), self.chain_id)

    def region_digest(
        self,
        region: int,
        shard_chain_id: int,
        market: str,
        members: Sequence[str],
        threshold: int,
        mechanism_id: int,
        config_nonce: int,
    ) -> bytes:
        members_hash = keccak(encode(["address[]"], [[to_canonical_address(m) for m in members]]))
        return typed_digest(
            self.domain,
            struct_hash(
                REGION_TYPE,
                ["uint256", "uint256", "address", "bytes32", *["uint256"] * 3],
                [
                    region,
                    shard_chain_id,
                    market,
                    members_hash,
                    threshold,
                    mechanism_id,
                    config_nonce,
                ],
            ),
        )

    def checkpoint_digest(
        self, region: int, block_number: int, block_hash: bytes, lease_root: bytes
    ) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(
                CHECKPOINT_TYPE,
                ["uint256", "uint256", "bytes32", "bytes32"],
                [region, block_number, block_hash, lease_root],
            ),
        )

    def vote_digest(self, xlease_id: bytes, region: int, commit: bool) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(VOTE_TYPE, ["bytes32", "uint256", "bool"], [xlease_id, region, commit]),
        )

    async def register_region(
        self,
        region: int,
        shard_chain_id: int,
        market: str,
        members: Sequence[str],
        threshold: int,
        mechanism_id: int,
        root_keys: Sequence[bytes],
    ) -> Receipt:
        market = to_checksum_address(market)
        members = [to_checksum_address(m) for m in members]
        nonce = await self.binding.call("config_nonce")
        digest = self.region_digest(
            region, shard_chain_id, market, members, threshold, mechanism_id, nonce
        )
        return await self.binding.transact(
            "register_region",
            region,
            shard_chain_id,
            market,
            list(members),
            threshold,
            mechanism_id,
            [s.as_tuple() for s in quorum_sign(digest, root_keys)],
            gas=2_000_000,
        )

    async def post_checkpoint(
        self,
        region: int,
        block_number: int,
        block_hash: bytes,
        lease_root: bytes,
        sigs: Sequence[Sig],
    ) -> Receipt:
        return await self.binding.transact(
            "post_checkpoint",
            region,
            block_number,
            block_hash,
            lease_root,
            [s.as_tuple() for s in sigs],
            gas=400_000,
        )

    async def verify_lease(
        self, region: int, index: int, lease_id: bytes, lease_word: int, proof: Sequence[bytes]
    ) -> bool:
        return bool(
            await self.binding.call(
                "verify_lease", region, index, lease_id, lease_word, list(proof)
            )
        )

    async def cross_state(self, xlease_id: bytes) -> CrossState:
        return CrossState(await self.binding.call("cross_state", xlease_id))
