"""A market participant's keys and signing: join a region, sign offers and bids.

Agents build on this; tests and benchmarks use it directly.
"""

from __future__ import annotations

from eth_account import Account

from ..bindings import RegionMarket
from ..chain import LedgerClient
from ..records import Bid, Offer, Role, SignedBid, SignedOffer

__all__ = ["Trader"]


class Trader:
    """One account on one region market."""

    def __init__(self, key: bytes, market: RegionMarket, funder: LedgerClient) -> None:
        self.key = key
        self.address = Account.from_key(key).address
        self.client = LedgerClient(funder.backend, key)
        self.market = market.as_client(self.client)
        self.funder = funder
        self.nonce = 0

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
        return SignedOffer(offer, self.market.sign_offer(self.key, offer))

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
        return SignedBid(bid, self.market.sign_bid(self.key, bid))
