"""The allocation mechanism interface: a pure, deterministic function from a
frozen order book to an allocation (Flower's strategy shape: one abstract class,
one module per algorithm, results as dataclasses).

Supply is a list of :class:`Unit` — one spectrum channel of an offer, or one
compute unit of an offer — each with the seller's reserve price. Demand is the
bids. A mechanism returns :class:`Award` s: which bid gets which units of which
offer at what total price. Determinism: every order is by value, then by a
hash-based tie-break key, never by arrival time or dict order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..market import Bid, Kind, Offer

__all__ = ["Allocation", "Award", "Book", "Mechanism", "Unit", "markets", "supply_units"]


@dataclass(frozen=True)
class Unit:
    """One unit of supply: channel ``channel`` of ``offer`` (spectrum) or one compute unit."""

    offer: int  # index into Book.offers
    kind: int
    channel: int  # spectrum: the channel; compute: the unit's index within the offer
    reserve_wei: int


@dataclass(frozen=True)
class Book:
    """A frozen order book of one region and epoch, as the mechanism sees it."""

    region: int
    epoch: int
    start: int
    end: int
    num_channels: int
    protected_mask: int
    offers: tuple[Offer, ...]
    bids: tuple[Bid, ...]
    offer_keys: tuple[bytes, ...]  # tie-break keys (the signed digests)
    bid_keys: tuple[bytes, ...]
    occupied_mask: int = 0  # channels already leased in this slot
    sold_units: tuple[int, ...] = ()  # compute units of each offer already sold
    weights: tuple[int, ...] = ()  # proportional_fair: per bid (default 1)
    bundles: tuple[tuple[int, int], ...] = ()  # bundle: (spectrum bid, compute bid) pairs


@dataclass(frozen=True)
class Award:
    """``bid`` wins ``units`` units of ``offer`` from ``first``, for ``price_wei`` in all."""

    bid: int
    offer: int
    first: int
    units: int
    price_wei: int


@dataclass(frozen=True)
class Allocation:
    """A mechanism's result; ``awards`` in a canonical order (by bid key)."""

    mechanism: str
    awards: tuple[Award, ...] = field(default_factory=tuple)

    def welfare_wei(self, book: Book) -> int:
        """Sum over winners of (bid value - seller reserve) for the units traded."""
        total = 0
        for a in self.awards:
            total += book.bids[a.bid].max_price_wei - book.offers[a.offer].reserve_wei * a.units
        return total


def supply_units(book: Book, kind: int, compute_class: int | None = None) -> list[Unit]:
    """Every unit on offer of ``kind`` in the book's slot, free and not protected
    (compute: of ``compute_class`` — the offer's ``lo`` — when given).

    Spectrum: a channel offered by several sellers goes to the offer with the lowest
    reserve (ties by key), as one channel cannot be leased twice.
    """
    units: dict[int, Unit] = {}
    order = sorted(
        range(len(book.offers)), key=lambda i: (book.offers[i].reserve_wei, book.offer_keys[i])
    )
    compute: list[Unit] = []
    for i in order:
        o = book.offers[i]
        if o.kind != kind or o.start > book.start or o.end < book.end:
            continue
        if kind != Kind.SPECTRUM and compute_class is not None and o.lo != compute_class:
            continue
        if kind == Kind.SPECTRUM:
            for ch in range(max(0, o.lo), min(o.hi, book.num_channels)):
                blocked = (book.protected_mask | book.occupied_mask) >> ch & 1
                if not blocked and ch not in units:
                    units[ch] = Unit(i, kind, ch, o.reserve_wei)
        else:
            sold = book.sold_units[i] if book.sold_units else 0
            compute.extend(Unit(i, kind, u, o.reserve_wei) for u in range(sold, o.hi))
    if kind == Kind.SPECTRUM:
        return sorted(
            units.values(), key=lambda u: (u.reserve_wei, book.offer_keys[u.offer], u.channel)
        )
    return compute


def bid_order(book: Book, indices: Sequence[int]) -> list[int]:
    """Bids by value per unit, highest first; ties broken by key."""
    return sorted(
        indices,
        key=lambda i: (-book.bids[i].max_price_wei * 10**6 // book.bids[i].units, book.bid_keys[i]),
    )


class Mechanism(ABC):
    """One allocation rule; ``allocate`` must be pure and deterministic."""

    #: the id a region's on-chain configuration names it by
    mechanism_id: int = -1
    name: str = ""

    @abstractmethod
    def allocate(self, book: Book) -> Allocation:
        """The awards for ``book``."""


def markets(book: Book) -> list[tuple[int, int | None]]:
    """The separate markets of a book: spectrum, and compute per class."""
    classes = sorted({b.lo for b in book.bids if b.kind == Kind.COMPUTE})
    return [(int(Kind.SPECTRUM), None), *((int(Kind.COMPUTE), c) for c in classes)]
