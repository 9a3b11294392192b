"""``bundle``: spectrum + compute together, all or nothing.

A bundle is a pair of bids by one buyer — a spectrum bid and a compute bid
with the same window — grouped in the book by ``Book.bundles`` (pairs of bid
indices); bids outside any bundle are ignored. Its value is the sum of the
two bids' maxima; its size is the number of units it needs. Greedy by density
(value / size, ties by key): a bundle wins only if both parts fit in what is
left; otherwise neither part.

Payments are critical values (Lehmann, O'Callaghan and Shoham): a winner pays
its size times the density of the first bundle it blocked — the first later
bundle that lost and would have won had this one not taken its units — and at
least the reserves of its units; so for single-minded buyers truth-telling is
dominant. The payment is split between the two leases: each part first covers
its own reserve, the surplus goes in proportion to each bid's headroom above
its reserve — so each lease is within [its reserve, its own bid].
"""

from __future__ import annotations

from ..records import Kind
from .base import (
    Allocation,
    Award,
    BidShape,
    Book,
    Demand,
    Mechanism,
    Order,
    OrderGroup,
    Unit,
    supply_units,
)

__all__ = ["Bundle"]


def _fit(
    book: Book, spectrum: list[Unit], compute: list[Unit], s_bid: int, c_bid: int
) -> tuple[list[Unit], list[Unit]] | None:
    """Units for both parts out of what is left, or None."""
    sb, cb = book.bids[s_bid], book.bids[c_bid]
    run = None
    free = sorted(spectrum, key=lambda u: (book.offer_keys[u.offer], u.channel))
    for start in range(len(free)):
        cand = free[start : start + sb.units]
        if (
            len(cand) == sb.units
            and all(
                cand[j].offer == cand[0].offer and cand[j].channel == cand[0].channel + j
                for j in range(sb.units)
            )
            and cand[0].channel >= sb.lo
            and cand[-1].channel < sb.hi
        ):
            run = cand
            break
    if run is None:
        return None
    by_offer: dict[int, list[Unit]] = {}
    for u in compute:
        if book.offers[u.offer].lo == cb.lo:  # the compute class the bid asks for
            by_offer.setdefault(u.offer, []).append(u)
    for offer in sorted(by_offer, key=lambda k: book.offer_keys[k]):
        if len(by_offer[offer]) >= cb.units:
            return run, by_offer[offer][: cb.units]
    return None


def _greedy(
    book: Book, order: list[tuple[int, int]], skip: tuple[int, int] | None
) -> list[tuple[tuple[int, int], list[Unit], list[Unit]]]:
    spectrum, compute = supply_units(book, 0), supply_units(book, 1)
    won = []
    taken: set[int] = set()  # bids already in a winning bundle: a bid wins once
    for pair in order:
        if pair == skip or taken.intersection(pair):
            continue
        fit = _fit(book, spectrum, compute, *pair)
        if fit is None:
            continue
        run, cunits = fit
        if book.bids[pair[0]].max_price_wei < sum(u.reserve_wei for u in run) or book.bids[
            pair[1]
        ].max_price_wei < sum(u.reserve_wei for u in cunits):
            continue
        won.append((pair, run, cunits))
        taken.update(pair)
        spectrum = [u for u in spectrum if u not in run]
        compute = [u for u in compute if u not in cunits]
    return won


def _pairs(book: Book) -> set[tuple[int, int]]:
    """The book's bundles that are one: a spectrum bid and a compute bid, each pair once
    (a pair named twice is not two bundles; one the wrong way round is none)."""
    n = len(book.bids)
    return {
        (s, c)
        for s, c in book.bundles
        if 0 <= s < n
        and 0 <= c < n
        and book.bids[s].kind == Kind.SPECTRUM
        and book.bids[c].kind == Kind.COMPUTE
        and book.bids[s].units > 0
        and book.bids[c].units > 0
    }


class Bundle(Mechanism):
    mechanism_id = 3
    name = "bundle"
    bid_shape = BidShape.BUNDLE

    def orders_for(self, demand: Demand, num_channels: int) -> list[OrderGroup]:
        """A compute bid and its run of channels as one bundle; compute alone is not
        bought here (bids outside a bundle are ignored)."""
        if not demand.channels:
            return []
        compute = Order(Kind.COMPUTE, demand.compute_class, 0, 1, demand.compute_value_wei)
        spectrum = Order(
            Kind.SPECTRUM,
            0,
            num_channels,
            demand.channels,
            demand.channels * demand.channel_value_wei,
        )
        return [OrderGroup((compute, spectrum), together=True)]

    def allocate(self, book: Book) -> Allocation:

        def size(pair: tuple[int, int]) -> int:
            return book.bids[pair[0]].units + book.bids[pair[1]].units

        def value(pair: tuple[int, int]) -> int:
            return book.bids[pair[0]].max_price_wei + book.bids[pair[1]].max_price_wei

        order = sorted(
            _pairs(book),
            key=lambda p: (-value(p) * 10**6 // size(p), book.bid_keys[p[0]], book.bid_keys[p[1]]),
        )
        winners = _greedy(book, order, None)
        won_pairs = {w[0] for w in winners}
        awards: list[Award] = []
        for pair, run, cunits in winners:
            reserve = sum(u.reserve_wei for u in run + cunits)
            without = {w[0] for w in _greedy(book, order, pair)}
            blocked = next((p for p in order if p not in won_pairs and p in without), None)
            critical = value(blocked) * size(pair) // size(blocked) if blocked else 0
            pay = min(value(pair), max(critical, reserve))
            s_reserve = sum(u.reserve_wei for u in run)
            c_reserve = reserve - s_reserve
            s_room = book.bids[pair[0]].max_price_wei - s_reserve
            c_room = book.bids[pair[1]].max_price_wei - c_reserve
            surplus = pay - reserve
            s_pay = s_reserve + (surplus * s_room // (s_room + c_room) if s_room + c_room else 0)
            awards.append(Award(pair[0], run[0].offer, run[0].channel, len(run), s_pay))
            awards.append(Award(pair[1], cunits[0].offer, 0, len(cunits), pay - s_pay))
        return Allocation(self.name, tuple(sorted(awards, key=lambda a: book.bid_keys[a.bid])))
