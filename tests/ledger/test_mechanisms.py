"""Property tests for every allocation mechanism (hypothesis)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ledger.errors import ConfigError
from ledger.mechanisms import (
    MECHANISMS,
    Allocation,
    BidShape,
    Book,
    Bundle,
    DoubleAuction,
    ProportionalFair,
    SecondPrice,
    mechanism_by_id,
    mechanism_by_name,
)
from ledger.records import Bid, Offer

START, END = 600, 660
CHANNELS = 8
PRICE = st.integers(1, 10_000)


@st.composite
def books(draw, unit_demand: bool = True, with_bundles: bool = False) -> Book:
    offers = []
    for i in range(draw(st.integers(0, 3))):
        lo = draw(st.integers(0, CHANNELS - 1))
        hi = draw(st.integers(lo + 1, CHANNELS + 2))
        offers.append(Offer(f"0x{i + 1:040x}", 0, lo, hi, START, END, draw(PRICE) // 10, i))
    for i in range(draw(st.integers(0, 2))):
        offers.append(
            Offer(
                f"0x{i + 10:040x}", 1, 0, draw(st.integers(1, 4)), START, END, draw(PRICE) // 10, i
            )
        )
    bids = []
    for i in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from([0, 1]))
        units = 1 if unit_demand else draw(st.integers(1, 3))
        lo, hi = (0, CHANNELS) if kind == 0 else (draw(st.integers(0, 1)), 0)
        bids.append(
            Bid(f"0x{i + 100:040x}", kind, lo, hi, units, START, END, draw(PRICE) * units, i)
        )
    bundles: tuple[tuple[int, int], ...] = ()
    if with_bundles:
        spectrum = [i for i, b in enumerate(bids) if b.kind == 0]
        compute = [i for i, b in enumerate(bids) if b.kind == 1]
        bundles = tuple(zip(spectrum, compute, strict=False))
    return Book(
        region=1,
        epoch=1,
        start=START,
        end=END,
        num_channels=CHANNELS,
        protected_mask=draw(st.integers(0, 2**CHANNELS - 1)) & draw(st.integers(0, 255)),
        offers=tuple(offers),
        bids=tuple(bids),
        offer_keys=tuple(
            draw(st.binary(min_size=4, max_size=4)) + bytes([i]) for i in range(len(offers))
        ),
        bid_keys=tuple(
            draw(st.binary(min_size=4, max_size=4)) + bytes([i]) for i in range(len(bids))
        ),
        occupied_mask=draw(st.integers(0, 2**CHANNELS - 1)) & draw(st.integers(0, 255)),
        sold_units=tuple(0 for _ in offers),
        weights=tuple(draw(st.integers(1, 3)) for _ in bids),
        bundles=bundles,
    )


def check_feasible(book: Book, allocation: Allocation) -> None:
    channels: set[int] = set()
    sold: dict[int, int] = {}
    seen_bids = set()
    for a in allocation.awards:
        bid, offer = book.bids[a.bid], book.offers[a.offer]
        assert a.bid not in seen_bids, "a bid won twice"
        seen_bids.add(a.bid)
        assert bid.kind == offer.kind
        assert a.units == bid.units, "a lease is its bid's units (the contract's rule)"
        assert a.price_wei <= bid.max_price_wei, "a winner pays above its bid"
        assert a.price_wei >= offer.reserve_wei * a.units, "a seller gets below its reserve"
        if offer.kind == 0:
            cells = set(range(a.first, a.first + a.units))
            assert not cells & channels, "a channel is sold twice"
            assert all(offer.lo <= c < min(offer.hi, book.num_channels) for c in cells)
            assert all(bid.lo <= c < bid.hi for c in cells)
            blocked = book.protected_mask | book.occupied_mask
            assert not any(blocked >> c & 1 for c in cells), "protected or occupied channel"
            channels |= cells
        else:
            assert bid.lo == offer.lo, "compute of another class"
            sold[a.offer] = sold.get(a.offer, 0) + a.units
            assert sold[a.offer] <= offer.hi, "compute sold beyond capacity"


def canonical(book: Book, allocation: Allocation) -> set[tuple]:
    return {
        (book.bid_keys[a.bid], book.offer_keys[a.offer], a.first, a.units, a.price_wei)
        for a in allocation.awards
    }


def permuted(book: Book, seed: int) -> Book:
    rng = random.Random(seed)
    bo, oo = list(range(len(book.bids))), list(range(len(book.offers)))
    rng.shuffle(bo)
    rng.shuffle(oo)
    inv_b = {old: new for new, old in enumerate(bo)}
    return replace(
        book,
        bids=tuple(book.bids[i] for i in bo),
        bid_keys=tuple(book.bid_keys[i] for i in bo),
        weights=tuple(book.weights[i] for i in bo),
        offers=tuple(book.offers[i] for i in oo),
        offer_keys=tuple(book.offer_keys[i] for i in oo),
        sold_units=tuple(book.sold_units[i] for i in oo),
        bundles=tuple((inv_b[s], inv_b[c]) for s, c in book.bundles),
    )


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    "mechanism_id", sorted(MECHANISMS), ids=[m.name for m in MECHANISMS.values()]
)
@SETTINGS
@given(data=st.data())
def test_feasible_and_deterministic(mechanism_id: int, data: st.DataObject):
    mechanism = mechanism_by_id(mechanism_id)
    unit = mechanism.bid_shape == BidShape.UNIT
    book = data.draw(books(unit_demand=unit, with_bundles=mechanism.bid_shape == BidShape.BUNDLE))
    allocation = mechanism.allocate(book)
    check_feasible(book, allocation)
    assert mechanism.allocate(book) == allocation  # same book, same allocation
    shuffled = permuted(book, data.draw(st.integers(0, 1000)))
    assert canonical(shuffled, mechanism.allocate(shuffled)) == canonical(book, allocation)


def utility(book: Book, allocation: Allocation, bidder: int, value: int) -> int:
    for a in allocation.awards:
        if a.bid == bidder:
            return value - a.price_wei
    return 0


@pytest.mark.parametrize("mechanism", [SecondPrice(), DoubleAuction()], ids=lambda m: m.name)
@SETTINGS
@given(data=st.data())
def test_unilateral_misreport_never_raises_utility(mechanism, data: st.DataObject):
    book = data.draw(books(unit_demand=True))
    assume(book.bids)
    bidder = data.draw(st.integers(0, len(book.bids) - 1))
    value = book.bids[bidder].max_price_wei
    truthful = utility(book, mechanism.allocate(book), bidder, value)
    report = data.draw(PRICE)
    lie = replace(
        book,
        bids=tuple(
            replace(b, max_price_wei=report) if i == bidder else b for i, b in enumerate(book.bids)
        ),
    )
    assert utility(lie, mechanism.allocate(lie), bidder, value) <= truthful


def test_second_price_with_one_channel_is_vickrey():
    offers = (Offer("0x" + "01" * 20, 0, 3, 4, START, END, 5, 0),)
    bids = tuple(
        Bid(f"0x{i:040x}", 0, 0, CHANNELS, 1, START, END, v, i) for i, v in enumerate([40, 90, 70])
    )
    book = Book(1, 1, START, END, CHANNELS, 0, offers, bids, (b"o",), (b"a", b"b", b"c"))
    (award,) = SecondPrice().allocate(book).awards
    assert (award.bid, award.first, award.price_wei) == (1, 3, 70)


def test_double_auction_reduces_trade_when_the_price_falls_outside():
    offers = tuple(
        Offer(f"0x{i + 1:040x}", 1, 0, 1, START, END, r, i) for i, r in enumerate([10, 20, 95])
    )
    bids = tuple(
        Bid(f"0x{i + 50:040x}", 1, 0, 0, 1, START, END, v, i) for i, v in enumerate([100, 60, 30])
    )
    book = Book(
        1,
        1,
        START,
        END,
        CHANNELS,
        0,
        offers,
        bids,
        (b"x", b"y", b"z"),
        (b"a", b"b", b"c"),
        sold_units=(0, 0, 0),
    )
    awards = DoubleAuction().allocate(book).awards
    # k = 2 (60 >= 20, 30 < 95); p = (30 + 95) / 2 = 62 > b_2 = 60: reduce to one trade at 60
    assert [(a.bid, a.price_wei) for a in awards] == [(0, 60)]


def test_bundle_is_all_or_nothing():
    spectrum = Offer("0x" + "01" * 20, 0, 0, 2, START, END, 1, 0)
    compute = Offer("0x" + "02" * 20, 1, 0, 1, START, END, 1, 0)
    bids = (
        Bid("0x" + "0a" * 20, 0, 0, CHANNELS, 2, START, END, 50, 0),
        Bid("0x" + "0a" * 20, 1, 0, 0, 2, START, END, 50, 1),  # wants 2 compute, 1 exists
        Bid("0x" + "0b" * 20, 0, 0, CHANNELS, 1, START, END, 10, 0),
        Bid("0x" + "0b" * 20, 1, 0, 0, 1, START, END, 10, 1),
    )
    book = Book(
        1,
        1,
        START,
        END,
        CHANNELS,
        0,
        (spectrum, compute),
        bids,
        (b"s", b"c"),
        (b"1", b"2", b"3", b"4"),
        sold_units=(0, 0),
        bundles=((0, 1), (2, 3)),
    )
    awards = Bundle().allocate(book).awards
    assert {a.bid for a in awards} == {2, 3}  # the big bundle cannot get its compute part


def test_proportional_fair_leases_whole_bids_around_a_protected_channel():
    """The quickstart's region 1: 16 channels, channel 7 protected, 4-channel bids. Each
    winner gets its bid's 4 channels in one free run, at the reserve of all 4."""
    offer = Offer("0x" + "01" * 20, 0, 0, 16, START, END, 5, 0)
    bids = tuple(Bid(f"0x{i + 1:040x}", 0, 0, 16, 4, START, END, 100, i) for i in range(4))
    book = Book(1, 1, START, END, 16, 1 << 7, (offer,), bids, (b"o",), (b"a", b"b", b"c", b"d"))
    awards = ProportionalFair().allocate(book).awards
    assert sorted((a.first, a.units, a.price_wei) for a in awards) == [
        (0, 4, 20),
        (8, 4, 20),
        (12, 4, 20),
    ]  # 0-6 holds one run of 4 (3 channels are left there), 8-15 two; the fourth loses


def test_proportional_fair_serves_the_heavier_weight_first():
    offer = Offer("0x" + "01" * 20, 0, 0, 4, START, END, 1, 0)
    bids = tuple(Bid(f"0x{i + 1:040x}", 0, 0, 4, 4, START, END, 100, i) for i in range(2))
    book = Book(1, 1, START, END, 8, 0, (offer,), bids, (b"o",), (b"a", b"b"), weights=(1, 3))
    (award,) = ProportionalFair().allocate(book).awards
    assert award.bid == 1  # its fair share, 3 of the 4 channels, covers more of its bid


def test_unknown_mechanism_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown mechanism id 9"):
        mechanism_by_id(9)
    with pytest.raises(ConfigError, match="choose one of second_price"):
        mechanism_by_name("vcg")
