"""Typed binding of one deployed ``RegionMarket`` (a region shard's contract).

Digests and signatures for this market's EIP-712 domain, its transactions, and
``settle``'s calldata packed word by word. The records it carries are
:mod:`ledger.records`; this module is where they meet a chain.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode
from eth_utils import keccak, to_canonical_address

from ..chain import Artifact, ContractBinding, LedgerClient, Receipt
from ..config import RegionConfig
from ..eip712 import (
    LIFECYCLE_TYPE,
    MECHANISM_TYPE,
    REGISTRATION_TYPE,
    ROTATION_TYPE,
    SETTLEMENT_TYPE,
    Sig,
    abi_words,
    domain_separator,
    quorum_sign,
    sign_digest,
    struct_hash,
    typed_digest,
)
from ..errors import ConfigError
from ..records import (
    Bid,
    Joiner,
    LeaseIn,
    LeaseRecord,
    LeaseState,
    Offer,
    Role,
    Step,
    chain_steps_hash,
    field_values,
    step_message_hash,
)

__all__ = [
    "LIFECYCLE_ACTIONS",
    "MARKET_DOMAIN",
    "MAX_JOINS",
    "MAX_LEASES",
    "MAX_STEPS",
    "RegionMarket",
]

MARKET_DOMAIN = "specledger RegionMarket"
#: leases in one settlement transaction (the contract's MAX_LEASES; a test compares them)
MAX_LEASES = 128
#: lifecycle steps in one transaction, and participants in one ``join`` (the contract's)
MAX_STEPS = 128
MAX_JOINS = 64
_ZERO32 = b"\0" * 32
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
        cls,
        client: LedgerClient,
        config: RegionConfig,
        committee: Sequence[str],
        artifact: Artifact | None = None,
    ) -> RegionMarket:
        """Deploy a market for ``config`` and ``committee`` (default artifact: the build)."""
        if len(committee) != config.committee_size:
            raise ConfigError(
                f"region {config.region_id}: {len(committee)} committee members given, "
                f"its configuration says {config.committee_size}"
            )
        args = config.constructor_args(committee)
        binding = await client.deploy(artifact or "RegionMarket", *args, gas=6_000_000)
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

    def settlement_digest(
        self, epoch: int, orderbook_root: bytes, leases_hash: bytes, steps_hash: bytes = _ZERO32
    ) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(
                SETTLEMENT_TYPE,
                ["uint256", "uint256", "bytes32", "bytes32", "bytes32"],
                [self.region_id, epoch, orderbook_root, leases_hash, steps_hash],
            ),
        )

    def lifecycle_digest(self, nonce: int, steps_hash: bytes) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(
                LIFECYCLE_TYPE,
                ["uint256", "uint256", "bytes32"],
                [self.region_id, nonce, steps_hash],
            ),
        )

    def registration_digest(self, who: str, role: int) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(
                REGISTRATION_TYPE, ["uint256", "address", "uint256"], [self.region_id, who, role]
            ),
        )

    def sign_registration(self, key: bytes, who: str, role: int) -> Sig:
        return sign_digest(key, self.registration_digest(who, role))

    def step_digest(self, lease_id: bytes, action: int, at: int = 0) -> bytes:
        """The digest a lease's party signs for one step (its LeaseStep message): a
        heartbeat (action HEARTBEAT at ``at``) or an action (``at`` 0)."""
        return typed_digest(self.domain, step_message_hash(self.region_id, lease_id, action, at))

    def sign_step(self, key: bytes, lease_id: bytes, action: int, at: int = 0) -> Sig:
        return sign_digest(key, self.step_digest(lease_id, action, at))

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

    async def join(self, joiners: Sequence[Joiner], gas: int | None = None) -> Receipt:
        """Register, fund and bond ``joiners`` (at most :data:`MAX_JOINS`) in one
        transaction; the sender pays every deposit and bond."""
        if len(joiners) > MAX_JOINS:
            raise ConfigError(f"{len(joiners)} participants in one join: at most {MAX_JOINS}")
        value = sum(j.deposit_wei + j.bond_wei for j in joiners)
        if gas is None:
            gas = 100_000 + 120_000 * len(joiners)
        return await self.binding.transact(
            "join", [j.as_abi() for j in joiners], value=value, gas=gas
        )

    async def settle(
        self,
        epoch: int,
        orderbook_root: bytes,
        leases_hash: bytes,
        leases: Sequence[LeaseIn],
        sigs: Sequence[Sig],
        gas: int | None = None,
        *,
        steps: Sequence[Step] = (),
        steps_hash: bytes | None = None,
    ) -> Receipt:
        """One settlement transaction: every lease of ``epoch``, or its next part (at most
        :data:`MAX_LEASES`); ``leases_hash`` chains the whole epoch's records. The first
        part also carries the lifecycle ``steps`` the committee attests; a later part
        carries none, only their ``steps_hash`` (the quorum signed it)."""
        if len(leases) > MAX_LEASES:
            raise ConfigError(f"{len(leases)} leases in one part: at most {MAX_LEASES}")
        if len(steps) > MAX_STEPS:
            raise ConfigError(
                f"{len(steps)} lifecycle steps in one settlement: at most {MAX_STEPS}"
            )
        if gas is None:
            gas = 400_000 + 80_000 * len(leases) + 60_000 * len(steps)
        if steps_hash is None:
            steps_hash = chain_steps_hash(steps)
        data = self.settle_calldata(
            epoch, orderbook_root, leases_hash, leases, sigs, steps, steps_hash
        )
        return await self.binding.send_calldata(data, gas=gas)

    async def apply_steps(
        self, steps: Sequence[Step], sigs: Sequence[Sig], gas: int | None = None
    ) -> Receipt:
        """``lifecycle``: attested steps on their own, under the quorum's signatures over
        :meth:`lifecycle_digest` of the market's current ``lifecycle_nonce``."""
        if not 0 < len(steps) <= MAX_STEPS:
            raise ConfigError(f"{len(steps)} lifecycle steps in one batch: 1 to {MAX_STEPS}")
        if gas is None:
            gas = 400_000 + 60_000 * len(steps)
        body = _steps_words(steps)
        head = abi_words(
            ("bytes32", "uint256", "uint256"), (chain_steps_hash(steps), 3 * 32, 3 * 32 + len(body))
        )
        data = b"".join([self.binding.selector("lifecycle"), head, body, _sigs_words(sigs)])
        return await self.binding.send_calldata(data, gas=gas)

    async def apply_attested(self, steps: Sequence[Step], keys: Sequence[bytes]) -> Receipt:
        """``lifecycle`` under the signatures of ``keys`` (a committee quorum) over the
        market's current batch nonce: the one way a batch is signed and sent."""
        digest = self.lifecycle_digest(await self.lifecycle_nonce(), chain_steps_hash(steps))
        return await self.apply_steps(steps, quorum_sign(digest, keys))

    async def lifecycle_nonce(self) -> int:
        return int(await self.binding.call("lifecycle_nonce"))

    def settle_calldata(
        self,
        epoch: int,
        orderbook_root: bytes,
        leases_hash: bytes,
        leases: Sequence[LeaseIn],
        sigs: Sequence[Sig],
        steps: Sequence[Step] = (),
        steps_hash: bytes = _ZERO32,
    ) -> bytes:
        """``settle``'s calldata, packed word by word: every field of its structs is one
        32-byte word, so each array is its length and then its elements' words in order
        (a test checks it against eth_abi, which took 0.1 ms a lease)."""
        leases_len = 32 + len(leases) * _LEASE_WORDS * 32
        steps_body = _steps_words(steps)
        head = abi_words(
            ("uint256", "bytes32", "bytes32", "bytes32", "uint256", "uint256", "uint256"),
            (
                epoch,
                orderbook_root,
                leases_hash,
                steps_hash,
                7 * 32,
                7 * 32 + leases_len,
                7 * 32 + leases_len + len(steps_body),
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
        parts.append(steps_body)
        parts.append(_sigs_words(sigs))
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


def _steps_words(steps: Sequence[Step]) -> bytes:
    """A ``Step[]`` argument's words: its length, then each step's words."""
    return len(steps).to_bytes(32, "big") + b"".join(step.words() for step in steps)


def _sigs_words(sigs: Sequence[Sig]) -> bytes:
    return len(sigs).to_bytes(32, "big") + b"".join(
        abi_words(_SIG_TYPES, s.as_tuple()) for s in sigs
    )
