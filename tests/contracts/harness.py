"""A region market on an in-memory embedded chain, with named participants.

Shared by the contract tests and the stateful test: it builds signed offers,
bids and settlements the way the region sequencer and committee will.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from eth_account import Account

from ledger.audit.read import RegionChain, read_chain
from ledger.audit.result import Violation
from ledger.audit.settlements import SettlementAudit
from ledger.bindings import RegionMarket
from ledger.chain import Artifact, LedgerClient, Receipt, dev_keys
from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.config import RegionConfig
from ledger.eip712 import Sig, quorum_sign
from ledger.records import (
    Bid,
    Kind,
    LeaseIn,
    LeaseRecord,
    Offer,
    Role,
    Step,
    chain_leases_hash,
)

GENESIS = 1_900_000_000  # in the future, so block times are ours and not the wall clock's
EPOCH = 60
REGION = 7
ETH = 10**18
ROOT = b"\x42" * 32


def address(key: bytes) -> str:
    return Account.from_key(key).address


@dataclass
class Market:
    """A deployed RegionMarket and the accounts that use it."""

    backend: EmbeddedBackend
    market: RegionMarket
    committee: list[bytes]
    keys: dict[str, bytes]
    views: dict[str, RegionMarket] = field(default_factory=dict)
    nonces: dict[str, int] = field(default_factory=dict)
    config: RegionConfig | None = None

    async def apply_steps(
        self, steps: Sequence[Step], *, signers: Sequence[bytes] | None = None
    ) -> Receipt:
        """A ``lifecycle`` batch of ``steps`` under the committee's signatures."""
        return await self.market.apply_attested(
            steps, self.committee[:2] if signers is None else signers
        )

    def as_(self, who: str) -> RegionMarket:
        if who not in self.views:
            self.views[who] = self.market.as_client(LedgerClient(self.backend, self.keys[who]))
        return self.views[who]

    def addr(self, who: str) -> str:
        return address(self.keys[who])

    async def now(self) -> int:
        return int((await self.backend.web3.eth.get_block("latest"))["timestamp"])

    async def travel(self, timestamp: int) -> None:
        await self.backend.mine(timestamp)

    async def slot_start(self, ahead: int = 1) -> int:
        return (await self.now() // EPOCH + ahead) * EPOCH

    def offer(
        self,
        seller: str = "seller",
        *,
        kind: Kind = Kind.SPECTRUM,
        lo: int = 0,
        hi: int = 16,
        start: int,
        end: int,
        reserve_wei: int = 10**12,
        nonce: int = 1,
    ) -> Offer:
        return Offer(self.addr(seller), int(kind), lo, hi, start, end, reserve_wei, nonce)

    def bid(
        self,
        buyer: str = "buyer",
        *,
        kind: Kind = Kind.SPECTRUM,
        lo: int = 0,
        hi: int = 16,
        units: int = 1,
        start: int,
        end: int,
        max_price_wei: int = 10**16,
        nonce: int | None = None,
    ) -> Bid:
        if nonce is None:
            nonce = self.nonces.get(buyer, 0)
            self.nonces[buyer] = nonce + 1
        return Bid(self.addr(buyer), int(kind), lo, hi, units, start, end, max_price_wei, nonce)

    def lease(
        self,
        offer: Offer,
        bid: Bid,
        *,
        first: int = 0,
        price_wei: int = 10**15,
        offer_key: str = "seller",
        bid_key: str = "buyer",
    ) -> LeaseIn:
        return LeaseIn(
            offer,
            self.market.sign_offer(self.keys[offer_key], offer),
            bid,
            self.market.sign_bid(self.keys[bid_key], bid),
            first,
            price_wei,
        )

    def committee_sigs(
        self,
        epoch: int,
        leases: Sequence[LeaseIn],
        *,
        signers: Sequence[bytes] | None = None,
        root: bytes = ROOT,
    ) -> list[Sig]:
        records = [lease.record(epoch, REGION) for lease in leases]
        digest = self.market.settlement_digest(epoch, root, chain_leases_hash(records))
        return quorum_sign(digest, self.committee[:2] if signers is None else signers)

    async def settle(
        self,
        epoch: int,
        leases: Sequence[LeaseIn],
        *,
        sigs: Sequence[Sig] | None = None,
        root: bytes = ROOT,
        submitter: str = "admin",
    ) -> list[LeaseRecord]:
        if sigs is None:
            sigs = self.committee_sigs(epoch, leases, root=root)
        records = [lease.record(epoch, REGION) for lease in leases]
        await self.as_(submitter).settle(epoch, root, chain_leases_hash(records), leases, sigs)
        return records


PARTICIPANTS = {"admin": 0, "seller": 4, "buyer": 5, "stranger": 6, "seller2": 7, "buyer2": 8}


async def make_market(artifact: Artifact | None = None, **config: object) -> Market:
    """A market of ``config`` deployed from ``artifact`` (default: the committed build)."""
    backend = EmbeddedBackend(None, chain_id=32_007, genesis_timestamp=GENESIS)
    all_keys = dev_keys(10)
    keys = {name: all_keys[i] for name, i in PARTICIPANTS.items()}
    committee = all_keys[1:4]
    if "protected_mask" in config:  # a bitmap, as the contract takes it
        mask = int(config.pop("protected_mask"))  # type: ignore[call-overload]
        config["protected_channels"] = tuple(c for c in range(256) if mask >> c & 1)
    cfg = RegionConfig(
        region_id=REGION,
        committee_size=len(committee),
        threshold=2,
        epoch_length_s=EPOCH,
        **config,
    )  # type: ignore[arg-type]
    market = await RegionMarket.deploy(
        LedgerClient(backend, keys["admin"]), cfg, [address(k) for k in committee], artifact
    )
    m = Market(backend, market, list(committee), keys, config=cfg)
    m.views["admin"] = market  # one client per key: the deployer's
    for seller in ("seller", "seller2"):
        await m.as_(seller).register(Role.TERRESTRIAL)
        await m.as_(seller).post_bond(ETH)
    for buyer in ("buyer", "buyer2"):
        await m.as_(buyer).register(Role.COORDINATOR)
        await m.as_(buyer).deposit(10 * ETH)
    return m


def with_price(lease: LeaseIn, price_wei: int) -> LeaseIn:
    return replace(lease, price_wei=price_wei)


async def region_chain(m: Market) -> RegionChain:
    """``m``'s chain read as the audit reads a registered region."""
    assert m.config is not None
    read = await read_chain(m.backend, f"region-{REGION}", [m.market.binding])
    return RegionChain(
        id=REGION,
        name=f"region-{REGION}",
        label="test",
        market=m.market,
        backend=m.backend,
        read=read,
        members=tuple(address(k) for k in m.committee),
        threshold=2,
        num_channels=m.config.num_channels,
        protected_mask=m.config.protected_mask,
        epoch_length_s=EPOCH,
    )


async def audit_market(m: Market) -> tuple[list[Violation], list[Violation]]:
    """What the audit finds on ``m``'s chain: (violations, warnings)."""
    found: list[Violation] = []
    warnings: list[Violation] = []
    await SettlementAudit(await region_chain(m), found, warnings).run()
    return found, warnings
