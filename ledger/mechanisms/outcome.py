"""The market metrics of one allocation of one book, each defined here and nowhere else.

For a book ``B`` and an allocation ``A`` (its awards ``a``: bid ``b(a)`` wins ``u(a)``
units of offer ``o(a)`` for ``p(a)`` wei in all), with ``v(b)`` a bid's value per unit
(``max_price_wei / units``: a bid prices its whole lease) and ``r(o)`` an offer's
reserve per unit:

- **welfare** ``W(A) = Σ_a [ v(b(a)) · u(a) - r(o(a)) · u(a) ]`` — only the units won
  are valued (a partial fill is worth its share of the bid, not the whole bid); half
  of a bundle is worth nothing to its single-minded buyer, so its value counts only
  when both parts of the bundle won;
- **optimum** ``W* = max W`` over every allocation the book's leases allow
  (:mod:`ledger.mechanisms.optimum`), and **efficiency** ``W(A) / W*`` (1.0 when
  ``W* = 0``: nothing could be gained, nothing was lost);
- **buyer payments** ``P = Σ_a p(a)``; **seller revenue** ``R`` = what sellers
  receive: the contract pays every seller its lease's price, so ``R = P`` for every
  mechanism here — McAfee's trade reduction, which in the textbook keeps
  ``(b_k - s_k)(k - 1)``, pays it to the sellers on chain
  (:mod:`ledger.mechanisms.double_auction`);
- **budget balance** ``P - R`` (0 here; a mechanism that kept a surplus would show it);
- **buyer surplus** ``Σ_a [ v(b(a)) · u(a) - p(a) ]`` (a buyer's utility, quasi-linear);
- **Jain's fairness index** over buyers (addresses with a bid in the book) of the share
  of their demand served, ``x_i = units won / units bid``:
  ``J = (Σ x_i)² / (n Σ x_i²)`` — 1 when all are served alike (1.0 when no one is
  served, all alike at 0; NaN without buyers). Shares rather than units, so that a
  buyer is not "unfair" for asking more; allocations rather than utilities, so that a
  mechanism without prices (proportional_fair charges reserves) is judged alike;
- **utilisation** ``Σ_a u(a) / |units offered|``, the units on offer being the book's
  free, unprotected supply in the slot (:func:`ledger.mechanisms.base.supply_units`),
  NaN when none;
- **clearing price**: the highest unit price paid (as the committee records it).

All sums are exact integers (wei); only the ratios are floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..records import Kind
from .base import Allocation, Award, Book, supply_units
from .optimum import bundle_partners, optimal_welfare

__all__ = [
    "Outcome",
    "award_value_wei",
    "evaluate",
    "jain_index",
    "units_offered",
    "welfare_wei",
]


@dataclass(frozen=True)
class Outcome:
    """Every metric of one allocation of one book (see the module docstring)."""

    mechanism: str
    welfare_wei: int
    optimum_wei: int
    efficiency: float
    buyer_payments_wei: int
    revenue_wei: int
    budget_balance_wei: int
    buyer_surplus_wei: int
    jain_fairness: float
    utilisation: float
    units_sold: int
    units_offered: int
    clearing_price_wei: int


def award_value_wei(book: Book, award: Award) -> int:
    """What the units an award hands its bid are worth to the bidder: ``v · u``."""
    bid = book.bids[award.bid]
    if bid.units <= 0:
        return 0
    return bid.max_price_wei * award.units // bid.units


def _valued(book: Book, allocation: Allocation) -> list[tuple[Award, int]]:
    """Each award with the value it creates: half of a bundle is worth nothing."""
    partners = bundle_partners(book)
    won = {a.bid for a in allocation.awards}
    return [
        (a, 0 if a.bid in partners and not partners[a.bid] & won else award_value_wei(book, a))
        for a in allocation.awards
    ]


def welfare_wei(book: Book, allocation: Allocation) -> int:
    """``W(A)``: the value of the units won less their sellers' reserves."""
    return sum(
        value - book.offers[a.offer].reserve_wei * a.units for a, value in _valued(book, allocation)
    )


def units_offered(book: Book) -> int:
    """The book's supply: free, unprotected channels and unsold compute units in its slot."""
    return len(supply_units(book, Kind.SPECTRUM)) + len(supply_units(book, Kind.COMPUTE))


def jain_index(shares: list[float]) -> float:
    """Jain's index ``(Σx)² / (n Σx²)`` of non-negative shares; 1.0 when all are 0."""
    if not shares:
        return math.nan
    square = sum(x * x for x in shares)
    if square == 0:
        return 1.0
    return sum(shares) ** 2 / (len(shares) * square)


def _served_shares(book: Book, allocation: Allocation) -> list[float]:
    asked: dict[str, int] = {}
    for bid in book.bids:
        if bid.units > 0:
            asked[bid.buyer] = asked.get(bid.buyer, 0) + bid.units
    got = dict.fromkeys(asked, 0)
    for a in allocation.awards:
        buyer = book.bids[a.bid].buyer
        if buyer in got:
            got[buyer] += a.units
    return [got[b] / asked[b] for b in sorted(asked)]


def evaluate(book: Book, allocation: Allocation, optimum_wei: int | None = None) -> Outcome:
    """Every metric of ``allocation`` on ``book``; ``optimum_wei`` is ``W*`` when the
    caller has it (one optimum serves every mechanism run on the book), else solved."""
    if optimum_wei is None:
        optimum_wei = optimal_welfare(book).welfare_wei
    valued = _valued(book, allocation)
    welfare = sum(value - book.offers[a.offer].reserve_wei * a.units for a, value in valued)
    payments = sum(a.price_wei for a in allocation.awards)
    revenue = payments  # the contract pays each seller its lease's price in full
    sold = sum(a.units for a in allocation.awards)
    offered = units_offered(book)
    return Outcome(
        mechanism=allocation.mechanism,
        welfare_wei=welfare,
        optimum_wei=optimum_wei,
        efficiency=welfare / optimum_wei if optimum_wei else 1.0,
        buyer_payments_wei=payments,
        revenue_wei=revenue,
        budget_balance_wei=payments - revenue,
        buyer_surplus_wei=sum(value - a.price_wei for a, value in valued),
        jain_fairness=jain_index(_served_shares(book, allocation)),
        utilisation=sold / offered if offered else math.nan,
        units_sold=sold,
        units_offered=offered,
        clearing_price_wei=max(
            (a.price_wei // a.units for a in allocation.awards if a.units), default=0
        ),
    )
