"""A market participant's keys and signing: join a region, sign offers and bids.

Agents build on this; tests and benchmarks use it directly.
"""

from __future__ import annotations

from eth_account import Account

from ..bindings import RegionMarket
from ..chain import LedgerClient
from ..records import Bid, Joiner, LeaseRecord, Offer, Role, SignedBid, SignedOffer, StepAction
from .lifecycle import SignedStep

__all__ = ["Trader"]


class Trader:
    """One account on one region market. It signs with the shared ``market`` binding
    (signing needs only the market's domain); a client of its own, for transactions
    it sends itself, is made on first use (a run of 10,000 agents sends none)."""

    def __init__(self, key: bytes, market: RegionMarket, funder: LedgerClient) -> None:
        self.key = key
        self.address = Account.from_key(key).address
        self.shared = market
        self.funder = funder
        self.nonce = 0
        self._own: RegionMarket | None = None

    @property
    def market(self) -> RegionMarket:
        """The market as this account sees it (transactions signed with its key)."""
        if self._own is None:
            self._own = self.shared.as_client(LedgerClient(self.funder.backend, self.key))
        return self._own

    @property
    def client(self) -> LedgerClient:
        return self.market.binding.client

    def joiner(self, role: Role, *, deposit_wei: int = 0, bond_wei: int = 0) -> Joiner:
        """This account's entry in a ``join`` batch: its registration, signed, and what
        the batch's sender pays into its escrow and bond."""
        sig = self.shared.sign_registration(self.key, self.address, int(role))
        return Joiner(self.address, int(role), deposit_wei, bond_wei, sig)

    def step(self, record: LeaseRecord, action: StepAction, at: int = 0) -> SignedStep:
        """A lifecycle step of ``record`` signed by this account, for the region's
        lifecycle book (a heartbeat at ``at``, or an action)."""
        at = at if action == StepAction.HEARTBEAT else 0
        sig = self.shared.sign_step(self.key, record.lease_id, int(action), at)
        return SignedStep(record, int(action), self.address, sig, at)

    async def join(
        self, role: Role, *, gas_money_wei: int = 10**17, deposit_wei: int = 0, bond_wei: int = 0
    ) -> None:
        """Get gas money from the funder, register, deposit, post a bond."""
        await self.funder.send(
            self.address, value=gas_money_wei + deposit_wei + bond_wei, gas=21_000
        )
        await self.market.register(role)
        if deposit_wei:
            await self.market.deposit(deposit_wei)
        if bond_wei:
            await self.market.post_bond(bond_wei)

    def offer(
        self,
        kind: int,
        lo: int,
        hi: int,
        start: int,
        end: int,
        reserve_wei: int,
        nonce: int | None = None,
    ) -> SignedOffer:
        if nonce is None:
            nonce, self.nonce = self.nonce, self.nonce + 1
        offer = Offer(self.address, kind, lo, hi, start, end, reserve_wei, nonce)
        return SignedOffer(offer, self.shared.sign_offer(self.key, offer))

    def bid(
        self,
        kind: int,
        lo: int,
        hi: int,
        units: int,
        start: int,
        end: int,
        max_price_wei: int,
        nonce: int | None = None,
    ) -> SignedBid:
        if nonce is None:
            nonce, self.nonce = self.nonce, self.nonce + 1
        bid = Bid(self.address, kind, lo, hi, units, start, end, max_price_wei, nonce)
        return SignedBid(bid, self.shared.sign_bid(self.key, bid))
