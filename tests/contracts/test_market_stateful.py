"""A hypothesis state machine drives RegionMarket through random sequences of deposits,
settlements (some invalid on purpose), heartbeats, relinquishes, defaults, completions,
expiries and withdrawals. A plain-Python model predicts every outcome; after every step:

- no two accepted spectrum leases overlap in channel x slot;
- escrow is conserved (contract balance == free + locked + bonds), and every free
  balance equals the model's;
- no free balance ever fell except by a withdrawal or a lease its owner signed;

and at the end of each sequence, the audit's own model of the contract
(:mod:`ledger.audit.model`) replays the chain with no violation: it accepted what the
contract accepted and expects the very events the contract emitted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ledger.eip712 import recover
from ledger.errors import TransactionReverted
from ledger.records import LeaseIn, LeaseRecord

from .harness import EPOCH, ETH, Market, audit_market, make_market

BUYERS = ("buyer", "buyer2")
SELLERS = ("seller", "seller2")
HEARTBEAT_S = 120
CLAIM_S = 600


@dataclass
class ModelLease:
    record: LeaseRecord
    state: str = "active"
    last_heartbeat: int = 0


class MarketMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        if hasattr(self, "m"):  # the audit's model of the contract agrees with every step
            found, _ = self.run(audit_market(self.m))
            assert found == [], found
        self.loop.close()

    @initialize()
    def deploy(self) -> None:
        self.m: Market = self.run(make_market(num_channels=8, protected_mask=0))
        self.free = {who: 10 * ETH for who in BUYERS} | {who: 0 for who in SELLERS}
        self.bond = {who: ETH for who in SELLERS}
        self.locked = 0
        self.epoch = 0
        self.leases: list[ModelLease] = []
        self.occupied: set[tuple[int, int]] = set()  # (slot, channel)
        self.signed_debits = {who: 0 for who in BUYERS}  # sum of prices of leases they signed
        self.accepted: list[LeaseIn] = []  # every lease the contract took, as submitted

    # -- time ------------------------------------------------------------------------------
    def head(self) -> int:
        return int(self.run(self.m.now()))

    @rule(seconds=st.integers(1, 240))
    def advance_time(self, seconds: int) -> None:
        self.run(self.m.travel(self.head() + seconds))

    # -- escrow ----------------------------------------------------------------------------
    @rule(who=st.sampled_from(BUYERS), amount=st.integers(1, 3 * ETH))
    def deposit(self, who: str, amount: int) -> None:
        self.run(self.m.as_(who).deposit(amount))
        self.free[who] += amount

    @rule(who=st.sampled_from(BUYERS + SELLERS), amount=st.integers(1, 12 * ETH))
    def withdraw(self, who: str, amount: int) -> None:
        if amount <= self.free[who]:
            self.run(self.m.as_(who).withdraw(amount))
            self.free[who] -= amount
        else:
            with pytest.raises(TransactionReverted, match="withdrawal exceeds free balance"):
                self.run(self.m.as_(who).withdraw(amount))

    # -- settlement ------------------------------------------------------------------------
    @rule(data=st.data(), count=st.integers(0, 4), forge=st.booleans())
    def settle(self, data: st.DataObject, count: int, forge: bool) -> None:
        now = self.head() + 1  # the settlement's own block
        first_slot = now // EPOCH + 1
        leases: list[LeaseIn] = []
        batch_cells: set[tuple[int, int]] = set()
        spend = dict.fromkeys(BUYERS, 0)
        valid = True
        for _ in range(count):
            buyer = data.draw(st.sampled_from(BUYERS))
            seller = data.draw(st.sampled_from(SELLERS))
            slot = first_slot + data.draw(st.integers(0, 3))
            slots = data.draw(st.integers(1, 3))
            units = data.draw(st.integers(1, 3))
            first = data.draw(st.integers(0, 8 - units))
            price = data.draw(st.integers(10**12, ETH))
            start, end = slot * EPOCH, (slot + slots) * EPOCH
            offer = self.m.offer(seller, lo=0, hi=8, start=start, end=end, reserve_wei=1)
            bid = self.m.bid(
                buyer, lo=0, hi=8, units=units, start=start, end=end, max_price_wei=price
            )
            leases.append(
                self.m.lease(
                    offer, bid, first=first, price_wei=price, offer_key=seller, bid_key=buyer
                )
            )
            cells = {(s, c) for s in range(slot, slot + slots) for c in range(first, first + units)}
            if cells & (self.occupied | batch_cells):
                valid = False
            batch_cells |= cells
            spend[buyer] += price
            if spend[buyer] > self.free[buyer]:
                valid = False
        if forge and leases:  # a bid signed by someone other than its buyer
            victim = leases[-1]
            leases[-1] = LeaseIn(
                victim.offer,
                victim.offer_sig,
                victim.bid,
                self.m.market.sign_bid(self.m.keys["stranger"], victim.bid),
                victim.first,
                victim.price_wei,
            )
            valid = False
        epoch = self.epoch + 1
        try:
            records = self.run(self.m.settle(epoch, leases))
        except TransactionReverted:
            assert not valid, "the contract refused a valid settlement"
            return
        assert valid, "the contract accepted an invalid settlement"
        self.epoch = epoch
        self.occupied |= batch_cells
        for buyer, amount in spend.items():
            self.free[buyer] -= amount
            self.signed_debits[buyer] += amount
            self.locked += amount
        self.leases.extend(ModelLease(r, last_heartbeat=r.start) for r in records)
        self.accepted.extend(leases)

    # -- lifecycle -------------------------------------------------------------------------
    def _active(self) -> list[ModelLease]:
        return [lease for lease in self.leases if lease.state == "active"]

    def _attempt(self, who: str, action: str, lease: ModelLease, ok: bool) -> bool:
        try:
            self.run(self.m.as_(who).lifecycle(action, lease.record))
        except TransactionReverted:
            assert not ok, f"{action} by {who} was refused but should have worked"
            return False
        assert ok, f"{action} by {who} worked but should have been refused"
        return True

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data(), by_buyer=st.booleans())
    def heartbeat(self, data: st.DataObject, by_buyer: bool) -> None:
        lease = data.draw(st.sampled_from(self._active()))
        who = self._party(lease, "buyer" if by_buyer else "seller")
        if self._attempt(who, "heartbeat", lease, ok=True) and not by_buyer:
            lease.last_heartbeat = self.head()

    def _party(self, lease: ModelLease, side: str) -> str:
        address = lease.record.buyer if side == "buyer" else lease.record.seller
        return next(name for name in BUYERS + SELLERS if self.m.addr(name) == address)

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self._active()))
        if self._attempt(self._party(lease, "buyer"), "complete", lease, ok=True):
            self._close(lease, "completed", seller_gets=lease.record.price_wei)

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data())
    def relinquish(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self._active()))
        r, now = lease.record, self.head() + 1
        if self._attempt(self._party(lease, "buyer"), "relinquish", lease, ok=now < r.end):
            used = r.price_wei * (now - r.start) // (r.end - r.start) if now > r.start else 0
            self._close(lease, "relinquished", seller_gets=used)

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data())
    def report_default(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self._active()))
        r, now = lease.record, self.head() + 1
        ok = now > lease.last_heartbeat + HEARTBEAT_S and now < r.end + CLAIM_S
        if self._attempt(self._party(lease, "buyer"), "report_default", lease, ok=ok):
            seller = self._party(lease, "seller")
            slashed = min(self.bond[seller], r.price_wei)
            self.bond[seller] -= slashed
            self.free[self._party(lease, "buyer")] += slashed
            self._close(lease, "defaulted", seller_gets=0)

    @precondition(lambda self: bool(self._active()))
    @rule(data=st.data())
    def expire(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self._active()))
        ok = self.head() + 1 >= lease.record.end + CLAIM_S
        if self._attempt("stranger", "expire", lease, ok=ok):
            self._close(lease, "expired", seller_gets=0)

    def _close(self, lease: ModelLease, state: str, seller_gets: int) -> None:
        lease.state = state
        price = lease.record.price_wei
        self.locked -= price
        self.free[self._party(lease, "seller")] += seller_gets
        self.free[self._party(lease, "buyer")] += price - seller_gets

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def escrow_is_conserved(self) -> None:
        if not hasattr(self, "m"):
            return
        binding = self.m.market.binding
        assert self.run(self.m.market.escrow_conserved())
        assert self.run(binding.call("total_locked")) == self.locked
        for who, free in self.free.items():
            assert self.run(binding.call("free", self.m.addr(who))) == free, who
        for who, bond in self.bond.items():
            assert self.run(binding.call("bond", self.m.addr(who))) == bond, who

    @invariant()
    def no_two_spectrum_leases_overlap(self) -> None:
        if not hasattr(self, "m"):
            return
        seen: set[tuple[int, int]] = set()
        for lease in self.leases:
            r = lease.record
            cells = {
                (s, c)
                for s in range(r.start // EPOCH, r.end // EPOCH)
                for c in range(r.first, r.first + r.units)
            }
            assert not cells & seen, "two accepted spectrum leases overlap"
            seen |= cells
        for slot in {s for s, _ in seen}:
            expected = sum(1 << c for s, c in seen if s == slot)
            assert self.run(self.m.market.binding.call("occupancy", slot)) == expected

    @invariant()
    def no_debit_without_the_payers_signature(self) -> None:
        if not hasattr(self, "m"):
            return
        for lease in self.accepted:  # re-verify what the contract accepted, off-chain
            digest = self.m.market.bid_digest(lease.bid)
            assert recover(digest, lease.bid_sig) == lease.bid.buyer
        for buyer in BUYERS:
            debited = sum(
                lease.price_wei for lease in self.accepted if lease.bid.buyer == self.m.addr(buyer)
            )
            assert debited == self.signed_debits[buyer]


MarketMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_market_state_machine = pytest.mark.slow(MarketMachine.TestCase)
