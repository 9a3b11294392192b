"""``proportional_fair``: a non-price share of the supply by weight.

For regions that do not want prices to decide: each bid's fair share of the
units of its kind is proportional to its weight (the book's per-bid weight,
default 1), never more than it asked for (water-filling: what a capped bid
leaves goes to the others, by largest remainder, ties by key).

A lease is exactly its bid's units (the contract leases ``bid.units`` channels
from ``first``, or ``bid.units`` compute units), so a bid is served whole or not
at all: bids go in order of how much of their demand their fair share covers
(fully covered ones first; ties by key), and each takes the cheapest place that
still fits it — a contiguous run of free, unprotected channels inside one offer
and inside the bid's band (the shortest such run first, to keep long runs for
long bids), or one offer's remaining compute units of its class. A winner pays
its offer's reserve for each unit, and only if its bid covers that.
"""

from __future__ import annotations

from fractions import Fraction

from ..records import Kind
from .base import Allocation, Award, Book, Mechanism, Unit, markets, supply_units

__all__ = ["ProportionalFair"]


def _shares(
    demand: dict[int, int], weight: dict[int, int], supply: int, keys: dict[int, bytes]
) -> dict[int, int]:
    """Integer water-filling of ``supply`` by weight, capped by demand."""
    share = dict.fromkeys(demand, 0)
    active = {i for i in demand if demand[i] > 0}
    left = supply
    while left > 0 and active:
        total = sum(weight[i] for i in active)
        exact = {i: Fraction(left * weight[i], total) for i in active}
        grant = {i: min(int(exact[i]), demand[i] - share[i]) for i in active}
        if sum(grant.values()) == 0:  # hand out single units by largest remainder
            for i in sorted(active, key=lambda i: (-(exact[i] - int(exact[i])), keys[i])):
                if left == 0:
                    break
                share[i] += 1
                left -= 1
            active = {i for i in active if share[i] < demand[i]}
            continue
        for i, g in grant.items():
            share[i] += g
            left -= g
        active = {i for i in active if share[i] < demand[i]}
    return share


def _pools(book: Book, kind: int, units: list[Unit]) -> list[list[Unit]]:
    """Spectrum: maximal runs of consecutive channels within one offer; compute: each
    offer's remaining units."""
    pools: list[list[Unit]] = []
    if kind == Kind.SPECTRUM:
        for u in sorted(units, key=lambda u: (book.offer_keys[u.offer], u.channel)):
            last = pools[-1][-1] if pools else None
            if last is not None and last.offer == u.offer and last.channel + 1 == u.channel:
                pools[-1].append(u)
            else:
                pools.append([u])
        return pools
    by_offer: dict[int, list[Unit]] = {}
    for u in units:
        by_offer.setdefault(u.offer, []).append(u)
    return [by_offer[k] for k in sorted(by_offer, key=lambda k: book.offer_keys[k])]


def _place(book: Book, pools: list[list[Unit]], bid: int) -> tuple[int, int] | None:
    """(pool, position in it) of the cheapest place for the whole of ``bid``, or None."""
    b = book.bids[bid]
    best: tuple[tuple[int, int, bytes, int], int, int] | None = None
    for p, pool in enumerate(pools):
        if b.kind == Kind.SPECTRUM:
            inside = [j for j, u in enumerate(pool) if b.lo <= u.channel < b.hi]
            if len(inside) < b.units:
                continue
            at = inside[0]  # a pool is consecutive channels: so is its part in the band
        elif len(pool) >= b.units:
            at = 0
        else:
            continue
        u = pool[at]
        rank = (u.reserve_wei, len(pool), book.offer_keys[u.offer], u.channel)
        if best is None or rank < best[0]:
            best = (rank, p, at)
    return None if best is None else (best[1], best[2])


class ProportionalFair(Mechanism):
    mechanism_id = 2
    name = "proportional_fair"

    def allocate(self, book: Book) -> Allocation:
        awards: list[Award] = []
        for kind, cls in markets(book):
            units = supply_units(book, kind, cls)
            idx = [
                i
                for i, b in enumerate(book.bids)
                if b.kind == kind and b.units > 0 and (cls is None or b.lo == cls)
            ]
            share = _shares(
                {i: book.bids[i].units for i in idx},
                {i: (book.weights[i] if book.weights else 1) for i in idx},
                len(units),
                {i: book.bid_keys[i] for i in idx},
            )
            order = sorted(
                idx, key=lambda i: (-Fraction(share[i], book.bids[i].units), book.bid_keys[i])
            )
            pools = _pools(book, kind, units)
            for i in order:
                place = _place(book, pools, i)
                if place is None:
                    continue
                p, at = place
                bid, pool = book.bids[i], pools[p]
                taken = pool[at : at + bid.units]
                price = taken[0].reserve_wei * bid.units  # one offer: one reserve
                if price > bid.max_price_wei:
                    continue  # the cheapest place it fits: no other is within its bid
                first = taken[0].channel if kind == Kind.SPECTRUM else 0
                awards.append(Award(i, taken[0].offer, first, bid.units, price))
                rest = [pool[:at], pool[at + bid.units :]]
                pools[p : p + 1] = [r for r in rest if r]
        return Allocation(self.name, tuple(sorted(awards, key=lambda a: book.bid_keys[a.bid])))
