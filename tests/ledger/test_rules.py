"""The committee's check of the contract's settlement rules (ledger/region/rules.py), held
against the contract itself.

Every lease of tests/contracts/test_region_market.py's REJECTIONS table (there each
one's revert is checked on chain) is dropped here with the contract's reason, and the
honest lease beside it then settles on chain. The rules that hold between the leases of
one settlement, or against leases settled before, are checked the same way: the check
keeps exactly what the contract accepts.
"""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from ledger.config import RegionConfig
from ledger.mechanisms import Allocation, Award, Dropped
from ledger.records import LeaseIn, SignedBid, SignedOffer
from ledger.region import RegionSequencer, Validator, settle_epoch
from ledger.region.rules import check_leases
from ledger.region.view import RegionView

from ..contracts.harness import EPOCH, ETH, REGION, Market, make_market
from ..contracts.test_region_market import (
    REJECTIONS,
    _variant,
    compute_lease,
    reverts,
    spectrum_lease,
)

CONFIG = RegionConfig(
    REGION,
    committee_size=3,
    threshold=2,
    epoch_length_s=EPOCH,
    num_channels=16,
    protected_channels=(7,),
)


@pytest.fixture
async def m() -> Market:
    return await make_market(protected_mask=0b1000_0000, num_channels=16)


async def check(m: Market, leases: list[LeaseIn]) -> tuple[list[bool], list[Dropped]]:
    view = RegionView(m.market, CONFIG)
    await view.sync()
    state = view.chain_state([lease.offer for lease in leases], [lease.bid for lease in leases])
    return check_leases(leases, state, m.market.domain)


@pytest.mark.parametrize(("variant", "reason"), REJECTIONS.items(), ids=list(REJECTIONS))
async def test_a_lease_the_contract_refuses_is_dropped_with_its_reason(
    m: Market, variant: str, reason: str
):
    bad = await _variant(m, variant)
    good = await spectrum_lease(m, first=12, buyer="buyer2", seller="seller2")
    kept, dropped = await check(m, [bad, good])
    assert kept == [False, True]
    assert [d.buyer for d in dropped] == [bad.bid.buyer] and reason in dropped[0].reason
    await m.settle(1, [good])  # what the check keeps, the contract takes


async def _unknown_kind(m: Market) -> LeaseIn:
    base = await compute_lease(m)
    return m.lease(replace(base.offer, kind=2), replace(base.bid, kind=2))


async def _leaving_seller(m: Market) -> LeaseIn:
    await m.as_("seller2").binding.transact("request_bond_exit", gas=100_000)
    return await spectrum_lease(m, seller="seller2")


MORE = {
    "compute-with-a-channel": (
        lambda m: compute_lease(m),
        lambda lease: replace(lease, first=1),
        "compute leases have no channel",
    ),
    "compute-of-another-class": (
        lambda m: compute_lease(m),
        "resign-bid-lo-1",
        "compute class differs",
    ),
    "compute-beyond-capacity": (
        lambda m: compute_lease(m, units=5, capacity=4),
        None,
        "compute offer sold beyond capacity",
    ),
    "unknown-kind": (_unknown_kind, None, "unknown resource kind"),
    "seller-leaving": (_leaving_seller, None, "seller is leaving (bond exit pending)"),
}


@pytest.mark.parametrize(("make", "edit", "reason"), MORE.values(), ids=list(MORE))
async def test_more_rules_agree_with_the_contract(m: Market, make, edit, reason: str):
    lease = await make(m)
    if edit == "resign-bid-lo-1":
        lease = m.lease(lease.offer, replace(lease.bid, lo=1))
    elif edit is not None:
        lease = edit(lease)
    await reverts(reason, m.settle(1, [lease]))
    kept, dropped = await check(m, [lease])
    assert kept == [False] and dropped[0].reason == reason


async def test_leases_of_one_settlement_are_checked_together(m: Market):
    first = await spectrum_lease(m, units=3, first=0)
    overlapping = await spectrum_lease(m, units=2, first=2, buyer="buyer2", seller="seller2")
    a = await compute_lease(m, units=3, capacity=4)
    over_capacity = await compute_lease(m, units=2, capacity=4, buyer="buyer2")
    start = first.bid.start
    offer = m.offer(start=start, end=start + EPOCH)
    rich, broke = (  # 6 + 5 ETH: more than buyer2's 10
        m.lease(
            offer,
            m.bid("buyer2", start=start, end=start + EPOCH, max_price_wei=price),
            first=channel,
            price_wei=price,
            bid_key="buyer2",
        )
        for channel, price in ((10, 6 * ETH), (11, 5 * ETH))
    )
    again = replace(first, first=4)  # the same bid (buyer, nonce) a second time
    leases = [first, overlapping, a, over_capacity, rich, broke, again]
    kept, dropped = await check(m, leases)
    assert kept == [True, False, True, False, True, False, False]
    assert [d.reason for d in dropped] == [
        "spectrum lease overlaps another",
        "compute offer sold beyond capacity",
        "buyer's free balance below price",
        "bid nonce already used",
    ]
    await m.settle(1, [lease for lease, ok in zip(leases, kept, strict=True) if ok])
    # and against what is settled now
    later = await spectrum_lease(m, units=1, first=1, buyer="buyer2", seller="seller2")
    kept, dropped = await check(m, [later, replace(first, first=13)])
    assert kept == [False, False]
    assert [d.reason for d in dropped] == [
        "spectrum lease overlaps another",
        "bid nonce already used",
    ]


class ShrinkingValidator(Validator):
    """Signs what the old proportional_fair produced: awards smaller than their bids."""

    def allocate(self, frozen, mechanism) -> Allocation:
        allocation = super().allocate(frozen, mechanism)
        return replace(
            allocation,
            awards=tuple(
                replace(a, units=a.units - 1) if a.units > 1 else a for a in allocation.awards
            ),
        )


async def test_validators_drop_what_the_contract_would_refuse_and_settle_the_rest():
    """An unbonded seller's offer reached the book (say, admitted by an older sequencer):
    its awards are dropped with the reason, and every honest lease of the epoch settles."""
    m = await make_market(protected_mask=0b1000_0000, mechanism="proportional_fair")
    seq = RegionSequencer(m.market, replace(CONFIG, mechanism="proportional_fair"))
    epoch = await m.now() // EPOCH + 2
    await seq.open(epoch)
    start, end = seq.window(epoch)
    honest = m.offer("seller", lo=0, hi=4, start=start, end=end, reserve_wei=10**9)
    unbonded = m.offer("stranger", lo=8, hi=16, start=start, end=end, reserve_wei=10**12)
    await seq.submit_offer(SignedOffer(honest, m.market.sign_offer(m.keys["seller"], honest)))
    seq._offers[m.market.offer_digest(unbonded)] = SignedOffer(  # admission bypassed
        unbonded, m.market.sign_offer(m.keys["stranger"], unbonded)
    )
    for buyer in ("buyer", "buyer2"):
        for _ in range(2):
            bid = m.bid(buyer, units=2, start=start, end=end, max_price_wei=10**15)
            await seq.submit_bid(SignedBid(bid, m.market.sign_bid(m.keys[buyer], bid)))
    frozen = seq.close()
    assert pickle.loads(pickle.dumps(frozen)) == frozen  # as it travels to a region worker
    validators = [Validator(k) for k in m.committee]
    _, _, leases, allocation = validators[0].attest(frozen, m.market)
    assert len(allocation.awards) == len(allocation.dropped) == 2
    assert {d.reason for d in allocation.dropped} == {
        "seller bond below minimum (not registered as a seller)"
    }
    assert all(lease.offer.seller == m.addr("seller") for lease in leases) and len(leases) == 2
    outcome = await settle_epoch(m.market, frozen, validators, 2)
    assert outcome.settled, outcome.reason
    assert len(outcome.leases) == 2

    # a validator that signs awards of fewer units than their bids signs none of them
    _, _, leases, allocation = ShrinkingValidator(m.committee[0]).attest(frozen, m.market)
    assert not allocation.awards and not leases
    assert {d.reason for d in allocation.dropped} >= {"award of 1 units for a bid of 2"}

    # and one whose awards name no bid of the book signs none of them either
    class Confused(Validator):
        def allocate(self, frozen, mechanism) -> Allocation:
            return Allocation("confused", (Award(len(frozen.bids), 0, 0, 1, 1),))

    _, _, leases, allocation = Confused(m.committee[0]).attest(frozen, m.market)
    assert not leases and "award names no such bid (4)" in allocation.dropped[0].reason
