"""Typed binding of one deployed ``RegionMarket`` (a region shard's contract).

Digests and signatures for this market's EIP-712 domain, its transactions, and
``settle``'s calldata packed word by word. The records it carries are
:mod:`ledger.records`; this module is where they meet a chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode
from eth_utils import keccak, to_canonical_address

from ..chain import ContractBinding, LedgerClient, Receipt
from ..config import RegionConfig
from ..eip712 import (
    MECHANISM_TYPE,
    ROTATION_TYPE,
    SETTLEMENT_TYPE,
    Sig,
    abi_words,
    domain_separator,
    sign_digest,
    struct_hash,
    typed_digest,
)
from ..errors import ConfigError
from ..records import Bid, LeaseIn, LeaseRecord, LeaseState, Offer, Role, field_values

__all__ = ["LIFECYCLE_ACTIONS", "MARKET_DOMAIN", "MAX_LEASES", "RegionMarket"]

MARKET_DOMAIN = "specledger RegionMarket"
#: leases in one settlement transaction (the contract's MAX_LEASES; a test compares them)
MAX_LEASES = 128
LIFECYCLE_ACTIONS = ("heartbeat", "complete", "relinquish", "report_default", "expire")

_SIG_TYPES = ("uint256", "bytes32", "bytes32")
# LeaseIn as the contract takes it: Offer (8 words), Sig, Bid (9 words), Sig, first, price
_LEASE_TYPES = (*["uint256"] * 8, *_SIG_TYPES, *["uint256"] * 9, *_SIG_TYPES, "uint256", "uint256")
_LEASE_WORDS = len(_LEASE_TYPES)


class RegionMarket:
    """Typed binding of one deployed ``RegionMarket``."""

    def __init__(self, binding: ContractBinding, region_id: int, chain_id: int) -> None:
        self.binding = binding
        self.address = binding.address
        self.region_id = region_id
        self.chain_id = chain_id
        self.domain = domain_separator(MARKET_DOMAIN, chain_id, binding.address)

    @classmethod
    async def deploy(
        cls, client: LedgerClient, config: RegionConfig, committee: Sequence[str]
    ) -> RegionMarket:
        """Deploy a market for ``config`` with ``committee`` (validator addresses)."""
        if len(committee) != config.committee_size:
            raise ConfigError(
                f"region {config.region_id}: {len(committee)} committee members given, "
                f"its configuration says {config.committee_size}"
            )
        binding = await client.deploy(
            "RegionMarket", *config.constructor_args(committee), gas=6_000_000
        )
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
        leases_hash: bytes,
        leases: Sequence[LeaseIn],
        sigs: Sequence[Sig],
        gas: int | None = None,
    ) -> Receipt:
        """One settlement transaction: every lease of ``epoch``, or its next part (at most
        :data:`MAX_LEASES`); ``leases_hash`` chains the whole epoch's records."""
        if len(leases) > MAX_LEASES:
            raise ConfigError(f"{len(leases)} leases in one part: at most {MAX_LEASES}")
        if gas is None:
            gas = 400_000 + 80_000 * len(leases)
        data = self.settle_calldata(epoch, orderbook_root, leases_hash, leases, sigs)
        return await self.binding.send_calldata(data, gas=gas)

    def settle_calldata(
        self,
        epoch: int,
        orderbook_root: bytes,
        leases_hash: bytes,
        leases: Sequence[LeaseIn],
        sigs: Sequence[Sig],
    ) -> bytes:
        """``settle``'s calldata, packed word by word: every field of its structs is one
        32-byte word, so each array is its length and then its elements' words in order
        (a test checks it against eth_abi, which took 0.1 ms a lease)."""
        head = abi_words(
            ("uint256", "bytes32", "bytes32", "uint256", "uint256"),
            (
                epoch,
                orderbook_root,
                leases_hash,
                5 * 32,
                6 * 32 + len(leases) * _LEASE_WORDS * 32,
            ),
        )
        parts = [self.binding.selector("settle"), head, len(leases).to_bytes(32, "big")]
        for lease in leases:
            o, b = lease.offer, lease.bid
            parts.append(
                abi_words(
                    _LEASE_TYPES,
                    (
                        int(o.seller, 16),
                        *field_values(o)[1:],
                        *lease.offer_sig.as_tuple(),
                        int(b.buyer, 16),
                        *field_values(b)[1:],
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
        if action not in LIFECYCLE_ACTIONS:
            raise ConfigError(f"unknown lease action {action!r}")
        return await self.binding.transact(action, record.as_abi(), gas=200_000)

    async def lease_state(self, lease_id: bytes) -> LeaseState:
        return LeaseState(await self.binding.call("lease_state", lease_id))

    async def escrow_conserved(self) -> bool:
        return bool(await self.binding.call("escrow_conserved"))
