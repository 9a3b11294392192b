"""``second_price``: a sealed-bid second-price auction per channel x time slot.

Unit-demand bids (one channel, or one compute unit, for the slot). With k
units of supply sorted by reserve (lowest first) and bids sorted by value
(highest first), k trades happen where the k-th bid still covers the k-th
reserve. Every winner pays the same price: max(the (k+1)-th bid, the k-th
reserve) — the lowest bid with which it would still have won (its critical
value), so bidding one's true value is a dominant strategy. With one channel
this is exactly Vickrey's second-price auction; with k it is the (k+1)-th price
auction. Sellers receive that price, which is at least their reserve.
"""

from __future__ import annotations

from .base import (
    Allocation,
    Award,
    Book,
    UnitDemandMechanism,
    markets,
    supply_units,
    unit_bids,
)

__all__ = ["SecondPrice", "uniform_price_auction"]


def uniform_price_auction(book: Book, kind: int, compute_class: int | None) -> list[Award]:
    units = supply_units(book, kind, compute_class)
    bids = unit_bids(book, kind, compute_class)
    k = 0
    while (
        k < min(len(units), len(bids)) and book.bids[bids[k]].max_price_wei >= units[k].reserve_wei
    ):
        k += 1
    if k == 0:
        return []
    next_bid = book.bids[bids[k]].max_price_wei if k < len(bids) else 0
    price = max(next_bid, units[k - 1].reserve_wei)
    return [
        Award(
            bid=bids[j],
            offer=units[j].offer,
            first=units[j].channel if kind == 0 else 0,
            units=1,
            price_wei=price,
        )
        for j in range(k)
    ]


class SecondPrice(UnitDemandMechanism):
    mechanism_id = 0
    name = "second_price"

    def allocate(self, book: Book) -> Allocation:
        awards = [a for kind, cls in markets(book) for a in uniform_price_auction(book, kind, cls)]
        return Allocation(self.name, tuple(sorted(awards, key=lambda a: book.bid_keys[a.bid])))
