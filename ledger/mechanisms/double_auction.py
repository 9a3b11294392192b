"""``double_auction``: McAfee's truthful double auction (trade reduction).

Several sellers (each supply unit with its reserve as the ask) and several
unit-demand buyers. Sort asks up (s_1 <= s_2 <= ...) and bids down
(b_1 >= b_2 >= ...); k is the largest index with b_k >= s_k. Candidate price
p = (b_{k+1} + s_{k+1}) / 2 (if both exist):

- if s_k <= p <= b_k, all k pairs trade at p;
- otherwise the k-th pair is dropped and k - 1 pairs trade: buyers pay b_k,
  sellers are owed s_k.

Neither side can gain by misreporting. The on-chain lease carries what the
buyer pays; in the reduced case the market contract pays the seller that full
amount (there is no separate market-maker account), so sellers receive at
least s_k — never below their reserve.
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

__all__ = ["DoubleAuction"]


def mcafee(book: Book, kind: int, compute_class: int | None) -> list[Award]:
    asks = supply_units(book, kind, compute_class)
    bids = unit_bids(book, kind, compute_class)
    k = 0
    while k < min(len(asks), len(bids)) and book.bids[bids[k]].max_price_wei >= asks[k].reserve_wei:
        k += 1
    if k == 0:
        return []
    b_k, s_k = book.bids[bids[k - 1]].max_price_wei, asks[k - 1].reserve_wei
    if k < len(asks) and k < len(bids):
        p = (book.bids[bids[k]].max_price_wei + asks[k].reserve_wei) // 2
        if s_k <= p <= b_k:
            return [
                Award(bids[j], asks[j].offer, asks[j].channel if kind == 0 else 0, 1, p)
                for j in range(k)
            ]
    # trade reduction: the k-th pair sets the prices and does not trade
    return [
        Award(bids[j], asks[j].offer, asks[j].channel if kind == 0 else 0, 1, b_k)
        for j in range(k - 1)
    ]


class DoubleAuction(UnitDemandMechanism):
    mechanism_id = 1
    name = "double_auction"

    def allocate(self, book: Book) -> Allocation:
        awards = [a for kind, cls in markets(book) for a in mcafee(book, kind, cls)]
        return Allocation(self.name, tuple(sorted(awards, key=lambda a: book.bid_keys[a.bid])))
