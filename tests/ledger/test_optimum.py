"""The exact optimum (ledger/mechanisms/optimum.py) against brute force and the mechanisms."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.mechanisms import MECHANISMS, Book, Bundle, SecondPrice, evaluate, optimal_welfare
from ledger.mechanisms.outcome import welfare_wei
from ledger.records import Bid, Offer

from .test_mechanisms import books

START, END = 600, 660
CHANNELS = 5


@st.composite
def tiny_books(draw) -> Book:
    """Up to 5 bids of any shape, a few offers, some channels blocked, maybe bundles."""
    offers = []
    for i in range(draw(st.integers(0, 3))):
        lo = draw(st.integers(0, CHANNELS - 1))
        offers.append(
            Offer(
                f"0x{i + 1:040x}",
                0,
                lo,
                draw(st.integers(lo + 1, CHANNELS + 1)),
                START if draw(st.booleans()) or i else START + 1,  # one may miss the slot
                END,
                draw(st.integers(0, 40)),
                i,
            )
        )
    for i in range(draw(st.integers(0, 2))):
        offers.append(
            Offer(
                f"0x{i + 10:040x}",
                1,
                draw(st.integers(0, 1)),  # its compute class
                draw(st.integers(1, 3)),
                START,
                END,
                draw(st.integers(0, 40)),
                i,
            )
        )
    bids = []
    for i in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from([0, 1]))
        units = draw(st.integers(1, 3))
        if kind == 0:
            lo = draw(st.integers(0, CHANNELS - 1))
            hi = draw(st.integers(lo + 1, CHANNELS))
        else:
            lo, hi = draw(st.integers(0, 1)), 0
        bids.append(
            Bid(f"0x{i + 100:040x}", kind, lo, hi, units, START, END, draw(st.integers(0, 200)), i)
        )
    spectrum = [i for i, b in enumerate(bids) if b.kind == 0]
    compute = [i for i, b in enumerate(bids) if b.kind == 1]
    bundles = tuple(zip(spectrum, compute, strict=False)) if draw(st.booleans()) else ()
    return Book(
        region=1,
        epoch=1,
        start=START,
        end=END,
        num_channels=CHANNELS,
        protected_mask=draw(st.integers(0, 2**CHANNELS - 1))
        & draw(st.integers(0, 2**CHANNELS - 1)),
        offers=tuple(offers),
        bids=tuple(bids),
        offer_keys=tuple(bytes([draw(st.integers(0, 255)), i]) for i in range(len(offers))),
        bid_keys=tuple(bytes([draw(st.integers(0, 255)), i]) for i in range(len(bids))),
        occupied_mask=draw(st.integers(0, 2**CHANNELS - 1)) & draw(st.integers(0, 2**CHANNELS - 1)),
        sold_units=tuple(draw(st.integers(0, 1)) for _ in offers),
        bundles=bundles,
    )


def brute_force(book: Book) -> int:
    """The best welfare by trying every way to serve every bid (written apart from the
    programme: its own reading of the lease rules, in the module docstring's words)."""
    in_slot = [o.start <= book.start and o.end >= book.end for o in book.offers]
    owner: dict[int, int] = {}  # a free channel's seller: its cheapest offer (then by key)
    for c in range(book.num_channels):
        if (book.protected_mask | book.occupied_mask) >> c & 1:
            continue
        covering = [
            i for i, o in enumerate(book.offers) if in_slot[i] and o.kind == 0 and o.lo <= c < o.hi
        ]
        if covering:
            owner[c] = min(covering, key=lambda i: (book.offers[i].reserve_wei, book.offer_keys[i]))
    left = {
        i: o.hi - (book.sold_units[i] if book.sold_units else 0)
        for i, o in enumerate(book.offers)
        if in_slot[i] and o.kind == 1
    }
    choices: list[list[tuple[tuple[int, ...], int | None, int]]] = []
    for b in book.bids:
        ways: list[tuple[tuple[int, ...], int | None, int]] = [((), None, 0)]  # not served
        if b.kind == 0:
            for first in range(b.lo, b.hi - b.units + 1):
                run = tuple(range(first, first + b.units))
                if all(c in owner for c in run) and len({owner[c] for c in run}) == 1:
                    cost = book.offers[owner[first]].reserve_wei * b.units
                    if b.max_price_wei >= cost:
                        ways.append((run, None, b.max_price_wei - cost))
        else:
            for i, n in left.items():
                cost = book.offers[i].reserve_wei * b.units
                if book.offers[i].lo == b.lo and n >= b.units and b.max_price_wei >= cost:
                    ways.append(((), i, b.max_price_wei - cost))
        choices.append(ways)
    best = 0

    def walk(k: int, used: frozenset[int], compute: dict[int, int], served: list[bool], total: int):
        nonlocal best
        if k == len(choices):
            if all(served[s] == served[c] for s, c in book.bundles):
                best = max(best, total)
            return
        for run, offer, gain in choices[k]:
            if used & set(run):
                continue
            if offer is not None and compute.get(offer, 0) + book.bids[k].units > left[offer]:
                continue
            more = dict(compute)
            if offer is not None:
                more[offer] = more.get(offer, 0) + book.bids[k].units
            walk(
                k + 1,
                used | set(run),
                more,
                [*served, bool(run) or offer is not None],
                total + gain,
            )

    walk(0, frozenset(), {}, [], 0)
    return best


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_books())
def test_optimum_equals_brute_force(book: Book):
    optimum = optimal_welfare(book)
    assert optimum.welfare_wei == brute_force(book)
    # the allocation it returns reaches it, priced within [reserves, bids]
    assert welfare_wei(book, optimum.allocation) == optimum.welfare_wei
    for a in optimum.allocation.awards:
        assert a.price_wei <= book.bids[a.bid].max_price_wei
        assert a.units == book.bids[a.bid].units


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(unit_demand=False, with_bundles=True))
def test_no_mechanism_beats_the_optimum(book: Book):
    optimum = optimal_welfare(book).welfare_wei
    for cls in MECHANISMS.values():
        outcome = evaluate(book, cls().allocate(book), optimum)
        assert outcome.welfare_wei <= optimum, cls.name
        assert outcome.efficiency <= 1.0
        # only a mechanism that splits a bundle can do harm: half of one is worth nothing
        # but its units' reserves
        if not book.bundles or cls is Bundle:
            assert outcome.efficiency >= 0.0, cls.name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(unit_demand=True))
def test_second_price_is_efficient_on_unit_demand_books(book: Book):
    # the (k+1)-th price auction trades the k highest bids against the k cheapest units
    # while they cover them: the welfare-maximising matching for one-unit bids
    assert evaluate(book, SecondPrice().allocate(book)).efficiency == 1.0


def test_a_book_of_the_size_the_examples_use_solves():
    # 60 one-channel bids and 30 three-channel bids over 16 channels of 4 sellers,
    # 30 compute bids against 10 offers: thousands of placements, still exact
    offers = [
        Offer(f"0x{i + 1:040x}", 0, 4 * i, 4 * i + 4, START, END, 10 + i, i) for i in range(4)
    ]
    offers += [Offer(f"0x{i + 50:040x}", 1, 0, 2, START, END, 5 + i, i) for i in range(10)]
    bids = [Bid(f"0x{i + 100:040x}", 0, 0, 16, 1, START, END, 20 + i % 17, i) for i in range(60)]
    bids += [Bid(f"0x{i + 200:040x}", 0, 0, 16, 3, START, END, 45 + i % 23, i) for i in range(30)]
    bids += [Bid(f"0x{i + 300:040x}", 1, 0, 0, 1, START, END, 6 + i % 11, i) for i in range(30)]
    book = Book(1, 1, START, END, 16, 0, tuple(offers), tuple(bids),
                tuple(bytes([1, i]) for i in range(len(offers))),
                tuple(bytes([2, i]) for i in range(len(bids))))  # fmt: skip
    optimum = optimal_welfare(book)
    # spectrum has no closed form here (a 4-channel offer takes a 3-channel bid and a
    # 1-channel one, or four 1-channel ones): no mechanism may beat it
    assert optimum.variables > 1000
    for cls in MECHANISMS.values():
        assert evaluate(book, cls().allocate(book), optimum.welfare_wei).efficiency <= 1.0
    # compute: 20 units, 30 bids; the best 20 of the bids' gains over the cheapest units
    # (two units per offer, offers at 5..14): exactly what second_price trades
    compute = Book(1, 1, START, END, 16, 0, tuple(offers[4:]), tuple(bids[90:]),
                   tuple(bytes([1, i]) for i in range(10)),
                   tuple(bytes([2, i]) for i in range(30)))  # fmt: skip
    assert optimal_welfare(compute).welfare_wei == welfare_wei(
        compute, SecondPrice().allocate(compute)
    )
