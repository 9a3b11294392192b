"""Whatever the validators sign settles: random books through every mechanism, on the
real contract (embedded backend), epoch after epoch.

Each example is one epoch of one region market: random offers (bonded sellers, and a
seller whose bond is below the minimum), random bids (a rich buyer, a poor one, in the
shapes the mechanism takes), sometimes a committed cross-region part. Most orders go
through the sequencer's admission; some bypass it, as a faulty or older sequencer would
let them in (an unbonded seller's offer, a bid beyond its buyer's escrow, a nonce used
twice, a forged signature). Then the committee attests and :func:`settle_epoch` sends
the settlement: it must never revert. When nothing bypassed admission, the mechanism's
allocation must be valid as it is (the check drops nothing): the check is a safety net,
not what makes the mechanisms right.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.chain import dev_keys
from ledger.config import RegionConfig
from ledger.mechanisms import BidShape, mechanism_by_name
from ledger.records import Bid, Kind, Offer, Role, SignedBid, SignedOffer
from ledger.region import OrderRefused, RegionSequencer, Validator, settle_epoch

from ..contracts.harness import EPOCH, REGION, Market, make_market

CHANNELS = 16
PROTECTED = (7,)
SELLERS = ("seller", "seller2", "stranger")  # the stranger's bond is below the minimum
BUYERS = ("buyer", "buyer2", "poor")
POOR_WEI = 3 * 10**13
RESERVE = st.integers(0, 10**12)  # per unit
UNIT_VALUE = st.integers(10**11, 3 * 10**12)


@st.composite
def offer_specs(draw):
    kind = draw(st.sampled_from([Kind.SPECTRUM, Kind.COMPUTE]))
    if kind == Kind.SPECTRUM:
        lo = draw(st.integers(0, CHANNELS - 1))
        hi = draw(st.integers(lo + 1, CHANNELS))
    else:
        lo, hi = draw(st.integers(0, 1)), draw(st.integers(1, 24))
    wide = draw(st.booleans())  # an offer for longer than this epoch
    return (draw(st.sampled_from(SELLERS)), int(kind), lo, hi, draw(RESERVE), wide)


@st.composite
def bid_specs(draw, shape: BidShape, kind: int):
    if kind == Kind.COMPUTE:
        units = 1 if shape == BidShape.UNIT else draw(st.integers(1, 3))
        lo, hi = draw(st.integers(0, 1)), 0
    elif shape == BidShape.UNIT:
        lo, hi, units = 0, CHANNELS, 1
    else:
        lo = draw(st.integers(0, CHANNELS - 1))
        hi = draw(st.integers(lo + 1, CHANNELS))
        units = draw(st.integers(1, min(4, hi - lo)))
    buyer = draw(st.sampled_from(BUYERS))
    return (buyer, kind, lo, hi, units, units * draw(UNIT_VALUE))


BYPASSES = st.sampled_from(["", "", "", "", "", "", "admit", "forge", "reuse-nonce"])


@st.composite
def epochs(draw, shape: BidShape):
    """One epoch's orders; in half the epochs every order goes through admission."""
    honest = draw(st.booleans())
    BYPASS = st.just("") if honest else BYPASSES
    offers = draw(st.lists(st.tuples(offer_specs(), BYPASS), min_size=3, max_size=8))
    kinds = st.sampled_from([Kind.SPECTRUM, Kind.COMPUTE])
    if shape == BidShape.BUNDLE:
        pairs = st.tuples(bid_specs(shape, Kind.SPECTRUM), bid_specs(shape, Kind.COMPUTE))
        bids = [
            [(s, bypass), ((s[0], *c[1:]), bypass)]  # one buyer's two parts
            for (s, c), bypass in draw(st.lists(st.tuples(pairs, BYPASS), min_size=5, max_size=30))
        ]
    else:
        bids = [
            [(draw(bid_specs(shape, int(draw(kinds)))), bypass)]
            for bypass in draw(st.lists(BYPASS, min_size=10, max_size=60))
        ]
    part = draw(st.none() | st.tuples(st.integers(0, CHANNELS - 2), st.integers(1, 2)))
    return honest, offers, bids, part


@dataclass
class Region:
    """One market and its sequencer and committee, across the examples of one test."""

    m: Market
    seq: RegionSequencer
    validators: list[Validator]
    epoch: int = 0
    nonces: dict[str, int] = field(default_factory=dict)
    settled: int = 0
    admitted_only: int = 0  # epochs whose every order went through admission

    def nonce(self, who: str) -> int:
        self.nonces[who] = self.nonces.get(who, 0) + 1
        return self.nonces[who]

    def signer(self, who: str, forge: bool) -> bytes:
        """``who``'s key, or another one's (a forged signature)."""
        if not forge:
            return self.m.keys[who]
        return self.m.keys["buyer" if who != "buyer" else "buyer2"]

    def offer(self, spec: tuple, start: int, end: int, bypass: str) -> SignedOffer:
        who, kind, lo, hi, reserve, wide = spec
        offer = Offer(self.m.addr(who), kind, lo, hi, start - wide * EPOCH, end, reserve, 0)
        offer = replace(offer, nonce=self.nonce(who))
        key = self.signer(who, bypass == "forge")
        return SignedOffer(offer, self.m.market.sign_offer(key, offer))

    def bid(self, spec: tuple, start: int, end: int, bypass: str) -> SignedBid:
        who, kind, lo, hi, units, value = spec
        nonce = self.nonces.get(who, 0) if bypass == "reuse-nonce" else self.nonce(who)
        bid = Bid(self.m.addr(who), kind, lo, hi, units, start, end, value, nonce)
        key = self.signer(who, bypass == "forge")
        return SignedBid(bid, self.m.market.sign_bid(key, bid))

    async def run(self, honest: bool, offers: list, bids: list, part: tuple | None) -> None:
        seq, market = self.seq, self.m.market
        self.epoch = max(self.epoch + 1, await self.m.now() // EPOCH + 2)
        await seq.open(self.epoch)
        start, end = seq.window(self.epoch)
        bypassed = False
        if part is not None:  # a committed cross-region part in this slot
            first, units = part
            nonce = self.nonce("seller")
            offer = Offer(self.m.addr("seller"), 0, 0, CHANNELS, start, end, 10**9, nonce)
            nonce = self.nonce("buyer2")
            bid = Bid(self.m.addr("buyer2"), 0, 0, CHANNELS, units, start, end, 10**15, nonce)
            lease = self.m.lease(offer, bid, first=first, price_wei=10**9 * units, bid_key="buyer2")
            if seq.hold(lease):
                seq.commit_part(lease)
        for spec, bypass in offers:
            signed = self.offer(spec, start, end, bypass)
            if bypass:
                seq._offers[market.offer_digest(signed.offer)] = signed
                bypassed = True
            else:
                with contextlib.suppress(OrderRefused):
                    await seq.submit_offer(signed)
        for group in bids:
            signed_bids = [self.bid(spec, start, end, bypass) for spec, bypass in group]
            if group[0][1]:
                digests = []
                for signed in signed_bids:
                    digests.append(market.bid_digest(signed.bid))
                    seq._bids[digests[-1]] = signed
                if len(digests) == 2:
                    seq._bundles.append((digests[0], digests[1]))
                bypassed = True
                continue
            with contextlib.suppress(OrderRefused):
                if len(signed_bids) == 2:
                    await seq.submit_bundle(*signed_bids)
                else:
                    await seq.submit_bid(signed_bids[0])
        frozen = seq.close()
        _, _, leases, allocation = self.validators[0].attest(frozen, market)
        if not bypassed:
            self.admitted_only += 1
            assert allocation.dropped == (), allocation.dropped
        assert all(p in leases for p in frozen.extra)  # committed parts come first
        outcome = await settle_epoch(market, frozen, self.validators, 2)
        assert outcome.settled, outcome.reason
        assert len(outcome.leases) == len(leases) == len(allocation.awards) + len(frozen.extra)
        seq.apply(outcome.leases)
        self.settled += len(leases)


async def _region(mechanism: str) -> Region:
    m = await make_market(
        protected_mask=sum(1 << c for c in PROTECTED), num_channels=CHANNELS, mechanism=mechanism
    )
    await m.as_("stranger").register(Role.TERRESTRIAL)
    await m.as_("stranger").post_bond(10**14)  # the minimum is 10**15
    m.keys["poor"] = dev_keys(10)[9]
    await m.as_("poor").register(Role.COORDINATOR)
    await m.as_("poor").deposit(POOR_WEI)
    config = RegionConfig(
        REGION,
        mechanism=mechanism,
        committee_size=3,
        threshold=2,
        epoch_length_s=EPOCH,
        num_channels=CHANNELS,
        protected_channels=PROTECTED,
    )
    seq = RegionSequencer(m.market, config)
    return Region(m, seq, [Validator(k) for k in m.committee])


MECHANISMS = ["second_price", "double_auction", "proportional_fair", "bundle"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_signed_allocation_settles(mechanism: str):
    loop = asyncio.new_event_loop()
    try:
        region = loop.run_until_complete(_region(mechanism))
        shape = mechanism_by_name(mechanism).bid_shape

        @settings(
            max_examples=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            database=None,
        )
        @given(epoch=epochs(shape))
        def one_epoch(epoch) -> None:
            loop.run_until_complete(region.run(*epoch))

        one_epoch()
        assert region.settled > 0 and region.admitted_only > 0  # the examples did trade
        assert loop.run_until_complete(region.m.market.escrow_conserved())
    finally:
        loop.close()
