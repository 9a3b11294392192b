"""The allocation mechanism interface: a pure, deterministic function from a
frozen order book to an allocation (Flower's strategy shape: one abstract class,
one module per algorithm, results as dataclasses).

Supply is a list of :class:`Unit` — one spectrum channel of an offer, or one
compute unit of an offer — each with the seller's reserve price. Demand is the
bids. A mechanism returns :class:`Award` s: which bid gets which units of which
offer at what total price. Determinism: every order is by value, then by a
hash-based tie-break key, never by arrival time or dict order.

A mechanism also owns the rules a buyer and a sequencer need before it runs:
:meth:`Mechanism.orders_for` turns what a buyer wants (:class:`Demand`) into
the unsigned bids this mechanism takes (:class:`OrderGroup`), and
:meth:`Mechanism.refusal` says why a bid does not fit it. Nothing outside this
package asks a mechanism's id or name what it accepts.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from ..records import Bid, Kind, Offer

__all__ = [
    "Allocation",
    "Award",
    "BidShape",
    "Book",
    "Demand",
    "Dropped",
    "Mechanism",
    "Order",
    "OrderGroup",
    "Unit",
    "UnitDemandMechanism",
    "markets",
    "supply_units",
    "unit_bids",
]


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


class Dropped(NamedTuple):
    """A lease the committee left out of a settlement, and the contract rule it broke."""

    buyer: str
    nonce: int
    reason: str


@dataclass(frozen=True)
class Allocation:
    """A mechanism's result; ``awards`` in a canonical order (by bid key).

    ``dropped``: awards (and committed cross-region parts) the validators' check of the
    contract's rules (``ledger.region.rules``) took out; empty as a mechanism returns it.
    What it achieves (welfare, efficiency, ...) is measured by :mod:`.outcome`."""

    mechanism: str
    awards: tuple[Award, ...] = field(default_factory=tuple)
    dropped: tuple[Dropped, ...] = ()


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


def unit_bids(book: Book, kind: int, compute_class: int | None) -> list[int]:
    """The book's unit-demand bids of one market, by value per unit (:func:`bid_order`):
    one compute unit of ``compute_class``, or one channel anywhere in the band — a bid for
    part of the band could not take whichever channel the auction hands it, so it is left
    out (the sequencer refuses such bids: :meth:`UnitDemandMechanism.refusal`)."""
    return bid_order(
        book,
        [
            i
            for i, b in enumerate(book.bids)
            if b.kind == kind
            and b.units == 1
            and (
                (b.lo, b.hi) == (0, book.num_channels)
                if kind == Kind.SPECTRUM
                else compute_class is None or b.lo == compute_class
            )
        ],
    )


def bid_order(book: Book, indices: Sequence[int]) -> list[int]:
    """Bids by value per unit, highest first; ties broken by key."""
    return sorted(
        indices,
        key=lambda i: (-book.bids[i].max_price_wei * 10**6 // book.bids[i].units, book.bid_keys[i]),
    )


class BidShape(enum.Enum):
    """The bids a mechanism takes."""

    UNIT = "unit"  # one channel anywhere in the band, or one compute unit; priced per unit
    RUN = "run"  # any number of contiguous channels in one bid; priced for the whole run
    BUNDLE = "bundle"  # a spectrum bid and a compute bid that win together; lone bids ignored


@dataclass(frozen=True)
class Demand:
    """What a buyer wants for one task in one epoch: compute of a class, and uplink channels."""

    compute_class: int  # the offers' ``lo`` it needs (device, edge server)
    compute_value_wei: int  # the most it pays for the compute unit
    channels: int = 0  # contiguous spectrum channels it needs with it
    channel_value_wei: int = 0  # the most it pays per channel


@dataclass(frozen=True)
class Order:
    """An unsigned bid in the shape a mechanism takes; the buyer adds window, nonce, signature."""

    kind: int
    lo: int
    hi: int
    units: int
    max_price_wei: int


@dataclass(frozen=True)
class OrderGroup:
    """Orders to submit together; ``together``: they win all or none (a bundle)."""

    orders: tuple[Order, ...]
    together: bool = False


class Mechanism(ABC):
    """One allocation rule; ``allocate`` must be pure and deterministic.

    The default rules take any bid shape (:attr:`BidShape.RUN`): a demand becomes one
    compute bid and one bid for its run of channels. Subclasses that take less say so.
    """

    #: the id a region's on-chain configuration names it by
    mechanism_id: ClassVar[int] = -1
    name: ClassVar[str] = ""
    #: the bids it takes (what :meth:`orders_for` produces and :meth:`refusal` allows)
    bid_shape: ClassVar[BidShape] = BidShape.RUN

    @abstractmethod
    def allocate(self, book: Book) -> Allocation:
        """The awards for ``book``."""

    def refusal(self, bid: Bid, num_channels: int) -> str | None:
        """Why this mechanism cannot take ``bid`` (a sequencer refuses it), or None."""
        return None

    def orders_for(self, demand: Demand, num_channels: int) -> list[OrderGroup]:
        """The bids that express ``demand`` in a region of ``num_channels`` channels, in the
        order the buyer signs them."""
        groups = [OrderGroup((_compute_order(demand),))]
        if demand.channels:
            groups.append(
                OrderGroup(
                    (
                        Order(
                            Kind.SPECTRUM,
                            0,
                            num_channels,
                            demand.channels,
                            demand.channels * demand.channel_value_wei,
                        ),
                    )
                )
            )
        return groups


class UnitDemandMechanism(Mechanism):
    """Auctions that clear one unit per bid: one channel anywhere in the band, or one
    compute unit, each priced on its own (second-price, double auction)."""

    bid_shape = BidShape.UNIT

    def refusal(self, bid: Bid, num_channels: int) -> str | None:
        if bid.kind == Kind.SPECTRUM:
            if bid.units != 1 or (bid.lo, bid.hi) != (0, num_channels):
                return "this region's auction takes one-channel bids over the whole band"
        elif bid.units != 1:
            return "this region's auction takes one-unit compute bids"
        return None

    def orders_for(self, demand: Demand, num_channels: int) -> list[OrderGroup]:
        spectrum = Order(Kind.SPECTRUM, 0, num_channels, 1, demand.channel_value_wei)
        return [
            OrderGroup((_compute_order(demand),)),
            *(OrderGroup((spectrum,)) for _ in range(demand.channels)),
        ]


def _compute_order(demand: Demand) -> Order:
    return Order(Kind.COMPUTE, demand.compute_class, 0, 1, demand.compute_value_wei)


def markets(book: Book) -> list[tuple[int, int | None]]:
    """The separate markets of a book: spectrum, and compute per class."""
    classes = sorted({b.lo for b in book.bids if b.kind == Kind.COMPUTE})
    return [(int(Kind.SPECTRUM), None), *((int(Kind.COMPUTE), c) for c in classes)]
