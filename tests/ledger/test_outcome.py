"""The market metrics (ledger/mechanisms/outcome.py) on books worked out by hand."""

from __future__ import annotations

import math

import pytest

from ledger.mechanisms import (
    Allocation,
    Award,
    Book,
    Bundle,
    DoubleAuction,
    ProportionalFair,
    SecondPrice,
    evaluate,
)
from ledger.mechanisms.outcome import jain_index, units_offered, welfare_wei
from ledger.records import Bid, Offer

START, END = 600, 660


def _offer(i: int, kind: int, lo: int, hi: int, reserve: int) -> Offer:
    return Offer(f"0x{i + 1:040x}", kind, lo, hi, START, END, reserve, i)


def _bid(buyer: str, kind: int, lo: int, hi: int, units: int, price: int, nonce: int = 0) -> Bid:
    return Bid(buyer, kind, lo, hi, units, START, END, price, nonce)


def _book(offers, bids, channels: int = 3, bundles=()) -> Book:
    return Book(
        region=1,
        epoch=5,
        start=START,
        end=END,
        num_channels=channels,
        protected_mask=0,
        offers=tuple(offers),
        bids=tuple(bids),
        offer_keys=tuple(bytes([1, i]) for i in range(len(offers))),
        bid_keys=tuple(bytes([2, i]) for i in range(len(bids))),
        sold_units=tuple(0 for _ in offers),
        weights=tuple(1 for _ in bids),
        bundles=tuple(bundles),
    )


A, B, C, D = (f"0x{0xA0 + i:040x}" for i in range(4))

# Two sellers: channels 0-1 at reserve 10 each, channel 2 at reserve 30.
# Four one-channel bids over the whole band: A 100, B 50, C 40, D 20.
UNIT = _book(
    [_offer(0, 0, 0, 2, 10), _offer(1, 0, 2, 3, 30)],
    [
        _bid(A, 0, 0, 3, 1, 100),
        _bid(B, 0, 0, 3, 1, 50),
        _bid(C, 0, 0, 3, 1, 40),
        _bid(D, 0, 0, 3, 1, 20),
    ],
)


def test_second_price_on_the_hand_book():
    # asks 10, 10, 30 against bids 100, 50, 40, 20: k = 3 trades (40 >= 30);
    # price = max(4th bid 20, 3rd reserve 30) = 30 for each of A, B, C.
    # welfare = (100-10) + (50-10) + (40-30) = 140 = the optimum (no better matching:
    # D's 20 covers only a cheap channel, where C's 40 gains more).
    # revenue = 3 x 30 = 90; surplus = 70 + 20 + 10 = 100 (= 140 - (90 - 50 reserves)).
    # Jain over served shares (1, 1, 1, 0) = 3^2 / (4 x 3) = 0.75; utilisation 3/3.
    o = evaluate(UNIT, SecondPrice().allocate(UNIT))
    assert (o.welfare_wei, o.optimum_wei, o.efficiency) == (140, 140, 1.0)
    assert (o.revenue_wei, o.buyer_payments_wei, o.budget_balance_wei) == (90, 90, 0)
    assert o.buyer_surplus_wei == 100
    assert o.jain_fairness == pytest.approx(0.75)
    assert (o.units_sold, o.units_offered, o.utilisation) == (3, 3, 1.0)
    assert o.clearing_price_wei == 30


def test_double_auction_on_the_hand_book():
    # k = 3 and no (k+1)-th pair: trade reduction, 2 pairs trade, buyers pay b_3 = 40.
    # welfare = 90 + 40 = 130 of 140; revenue 80 (the contract pays sellers the lease
    # price: budget balance 0); surplus = 60 + 10 = 70; shares (1, 1, 0, 0): Jain
    # = 2^2 / (4 x 2) = 0.5; utilisation 2/3.
    o = evaluate(UNIT, DoubleAuction().allocate(UNIT))
    assert (o.welfare_wei, o.optimum_wei) == (130, 140)
    assert o.efficiency == pytest.approx(130 / 140)
    assert (o.revenue_wei, o.budget_balance_wei, o.buyer_surplus_wei) == (80, 0, 70)
    assert o.jain_fairness == pytest.approx(0.5)
    assert o.utilisation == pytest.approx(2 / 3)
    assert o.clearing_price_wei == 40


def test_a_partial_fill_is_valued_by_the_units_won():
    # a bid for 2 channels worth 100 (50 a channel) handed 1 channel of reserve 10:
    # worth 50 - 10 = 40, not the whole bid's 100 - 10 = 90
    book = _book([_offer(0, 0, 0, 1, 10)], [_bid(A, 0, 0, 3, 2, 100)])
    partial = Allocation("test", (Award(0, 0, 0, 1, 10),))
    assert welfare_wei(book, partial) == 40
    o = evaluate(book, partial)
    # the bid cannot be served whole (one channel on offer): the optimum is 0 and the
    # share served is 1/2 for the only buyer (Jain 1 with one buyer)
    assert (o.optimum_wei, o.efficiency, o.buyer_surplus_wei) == (0, 1.0, 40)
    assert o.jain_fairness == 1.0


def test_proportional_fair_on_a_run_book():
    # channels 0-2 from one seller at 10; A wants 2 contiguous for 100, B 2 for 60,
    # C 1 for 15. Three channels: equal weights give shares 1, 1, 1 of demands 2, 2, 1,
    # so C (fully covered) goes first, then A and B (half covered each, by key: A)
    # — but after C takes channel 0, A takes channels 1-2 and B finds no room.
    # Welfare = (15 - 10) + (100 - 20) = 85; the optimum is A + C too (B + C: 45;
    # A alone: 80). Each pays reserves: revenue 30, surplus 85, utilisation 1.
    # Shares served (A 1, B 0, C 1): Jain = 4 / (3 x 2) = 2/3.
    book = _book(
        [_offer(0, 0, 0, 3, 10)],
        [_bid(A, 0, 0, 3, 2, 100), _bid(B, 0, 0, 3, 2, 60), _bid(C, 0, 0, 3, 1, 15)],
    )
    o = evaluate(book, ProportionalFair().allocate(book))
    assert (o.welfare_wei, o.optimum_wei, o.revenue_wei, o.buyer_surplus_wei) == (85, 85, 30, 85)
    assert o.jain_fairness == pytest.approx(2 / 3)
    assert o.utilisation == 1.0
    # second_price takes only one-channel bids: C alone, for max(no 2nd bid, 10) = 10
    sp = evaluate(book, SecondPrice().allocate(book))
    assert (sp.welfare_wei, sp.revenue_wei, sp.efficiency) == (5, 10, pytest.approx(5 / 85))


BUNDLED = _book(
    [_offer(0, 0, 0, 2, 10), _offer(1, 1, 0, 1, 5)],
    [_bid(A, 0, 0, 2, 2, 60), _bid(A, 1, 0, 0, 1, 40, 1)],
    channels=2,
    bundles=[(0, 1)],
)


def test_bundle_and_half_a_bundle():
    # A's bundle: 2 channels (reserve 20) + 1 compute unit (reserve 5), worth 60 + 40.
    # Alone, it pays its reserves (no bundle it blocks): 20 and 5.
    # welfare = 100 - 25 = 75 = optimum; surplus 75; revenue 25; utilisation 3/3.
    o = evaluate(BUNDLED, Bundle().allocate(BUNDLED))
    assert (o.welfare_wei, o.optimum_wei, o.revenue_wei, o.buyer_surplus_wei) == (75, 75, 25, 75)
    assert o.utilisation == 1.0
    # half of it (the channels alone) is worth nothing to A: -20 of reserves
    half = Allocation("test", (Award(0, 0, 0, 2, 20),))
    assert welfare_wei(BUNDLED, half) == -20
    assert evaluate(BUNDLED, half).buyer_surplus_wei == -20


def test_empty_book():
    book = _book([], [])
    o = evaluate(book, SecondPrice().allocate(book))
    assert (o.welfare_wei, o.optimum_wei, o.efficiency) == (0, 0, 1.0)
    assert math.isnan(o.utilisation) and math.isnan(o.jain_fairness)
    assert units_offered(book) == 0


@pytest.mark.parametrize(
    ("shares", "expected"),
    [([1, 1, 1], 1.0), ([1, 0], 0.5), ([1, 0, 0, 0], 0.25), ([0.5, 1], 2.25 / 2.5), ([0, 0], 1.0)],
    ids=["equal", "one-of-two", "one-of-four", "half-and-whole", "none-served"],
)
def test_jain_index(shares, expected):
    assert jain_index(shares) == pytest.approx(expected)
