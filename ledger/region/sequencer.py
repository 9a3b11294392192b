"""A region's sequencer: admits signed orders during an epoch, freezes the book at close.

Epoch ``e`` of a region leases time slot ``e``: the window
``[e * epoch_length_s, (e + 1) * epoch_length_s)``. During the epoch the
:class:`RegionSequencer` takes signed offers and bids and checks each at once,
answering a refusal with its reason (:class:`OrderRefused`); a bad message
never touches anyone else's. :meth:`RegionSequencer.close` freezes the book and
hashes it (the order-book root). Each :class:`Validator` re-runs the region's
mechanism on the frozen book on its own and signs the resulting settlement;
:func:`settle_epoch` sends the settlement only with ``t`` agreeing signatures —
a validator that signs something else is outvoted, and with fewer than ``t``
the epoch does not settle and no funds move.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..bindings import MAX_STEPS, RegionMarket
from ..config import RegionConfig
from ..errors import ConfigError, LedgerError
from ..mechanisms import Book, Mechanism, mechanism_by_id
from ..merkle import merkle_root
from ..records import (
    Kind,
    LeaseIn,
    SignedBid,
    SignedOffer,
    Step,
    channel_mask,
)
from .fields import order_problem, signer
from .lifecycle import LifecycleBook
from .rules import ChainState
from .view import RegionView

__all__ = ["FrozenBook", "OrderRefused", "RegionSequencer"]

MAX_PRICE_WEI = 10**30  # far above any real price: beyond it a bid is absurd


class OrderRefused(LedgerError):
    """The sequencer refused an offer or a bid; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"refused: {reason}")


@dataclass(frozen=True)
class FrozenBook:
    """An epoch's order book once closed: what every validator allocates from."""

    region: int
    epoch: int
    mechanism_id: int
    offers: tuple[SignedOffer, ...]
    bids: tuple[SignedBid, ...]
    offer_digests: tuple[bytes, ...]
    bid_digests: tuple[bytes, ...]
    root: bytes
    book: Book
    state: ChainState  # what the settlement rules check the leases against (rules.py)
    extra: tuple[LeaseIn, ...] = ()  # committed cross-region parts, settled as they are
    steps: tuple[Step, ...] = ()  # earlier leases' lifecycle steps, sent with the first part


class RegionSequencer(RegionView):
    """Collects and checks one region's signed offers and bids for the current epoch,
    against its view of the chain (:class:`~ledger.region.view.RegionView`)."""

    def __init__(self, market: RegionMarket, config: RegionConfig) -> None:
        super().__init__(market, config)
        self.epoch: int | None = None
        self.mechanism_id = config.mechanism_id  # re-read from the chain at every open()
        self.mechanism: Mechanism | None = config.mechanism_rules
        self._unknown_mechanism = ""  # why bids are refused when the chain names none we know
        self._offers: dict[bytes, SignedOffer] = {}
        self._bids: dict[bytes, SignedBid] = {}
        self._spend: dict[str, int] = {}  # max prices of a buyer's bids in this epoch
        self._pending: set[tuple[str, int]] = set()  # (buyer, nonce) of this epoch's bids
        self._bundles: list[tuple[bytes, bytes]] = []  # (spectrum, compute) bid digests
        self.steps = LifecycleBook(self)  # lifecycle steps handed in, until they land

    # -- epochs ----------------------------------------------------------------------------
    def window(self, epoch: int) -> tuple[int, int]:
        length = self.config.epoch_length_s
        return epoch * length, (epoch + 1) * length

    async def open(self, epoch: int) -> None:
        """Start taking orders for ``epoch``; catches up with the chain first."""
        await self.sync()
        self.mechanism_id = int(await self.market.binding.call("mechanism_id"))
        try:
            self.mechanism, self._unknown_mechanism = mechanism_by_id(self.mechanism_id), ""
        except ConfigError as exc:  # the region's epoch cannot settle; say so to each bidder
            self.mechanism, self._unknown_mechanism = None, str(exc)
        self.epoch = epoch
        self._offers.clear()
        self._bids.clear()
        self._spend.clear()
        self._pending.clear()
        self._bundles.clear()

    # -- admission ----------------------------------------------------------------------------
    def _check_common(self, kind: int) -> tuple[int, int]:
        if self.epoch is None:
            raise OrderRefused("no epoch is open")
        if kind not in (Kind.SPECTRUM, Kind.COMPUTE):
            raise OrderRefused(f"unknown resource kind {kind}")
        return self.window(self.epoch)

    async def submit_offer(self, signed: SignedOffer) -> bytes:
        """Admit a seller's offer; returns its digest or raises :class:`OrderRefused`."""
        o = _typed(signed, SignedOffer)
        _check_fields(o)
        offer = o.offer
        start, end = self._check_common(offer.kind)
        if offer.start > start or offer.end < end:
            raise OrderRefused(
                f"offer window [{offer.start}, {offer.end}) does not cover "
                f"epoch {self.epoch}'s [{start}, {end})"
            )
        if offer.kind == Kind.SPECTRUM:
            if not 0 <= offer.lo < offer.hi <= self.config.num_channels:
                raise OrderRefused(
                    f"band [{offer.lo}, {offer.hi}) is outside the region's "
                    f"channels [0, {self.config.num_channels})"
                )
            band = channel_mask(offer.lo, offer.hi - offer.lo)
            if band & self.config.protected_mask == band:
                raise OrderRefused("band lies entirely in protected channels")
        elif not 0 < offer.hi <= 10**6:
            raise OrderRefused(f"compute capacity {offer.hi} is absurd")
        if not 0 <= offer.reserve_wei <= MAX_PRICE_WEI:
            raise OrderRefused(f"reserve {offer.reserve_wei} wei is absurd")
        digest = self.market.offer_digest(offer)
        if signer(digest, o.sig) != offer.seller:
            raise OrderRefused("offer signature is not its seller's for this region and chain")
        standing = self.standing(offer.seller).seller_problem(self.config.min_bond_wei)
        if standing is not None:  # the settlement would revert, and every lease with it
            raise OrderRefused(f"{standing}: {offer.seller} cannot sell in this region")
        if digest in self._offers:
            raise OrderRefused("duplicate offer")
        self._offers[digest] = o
        return digest

    async def submit_bid(self, signed: SignedBid) -> bytes:
        """Admit a buyer's bid; returns its digest or raises :class:`OrderRefused`."""
        s = _typed(signed, SignedBid)
        _check_fields(s)
        bid = s.bid
        start, end = self._check_common(bid.kind)
        if (bid.start, bid.end) != (start, end):
            raise OrderRefused(
                f"bid window [{bid.start}, {bid.end}) is not epoch {self.epoch}'s [{start}, {end})"
            )
        if not 0 < bid.units <= 256:
            raise OrderRefused(f"{bid.units} units is not a sane request")
        if not 0 < bid.max_price_wei <= MAX_PRICE_WEI:
            raise OrderRefused(f"maximum price {bid.max_price_wei} wei is absurd")
        if bid.kind == Kind.SPECTRUM:
            if not 0 <= bid.lo < bid.hi <= self.config.num_channels or bid.hi - bid.lo < bid.units:
                raise OrderRefused(
                    f"band [{bid.lo}, {bid.hi}) for {bid.units} channels is outside the "
                    f"region's channels [0, {self.config.num_channels})"
                )
            band = channel_mask(bid.lo, bid.hi - bid.lo)
            if bin(band & ~self.config.protected_mask).count("1") < bid.units:
                raise OrderRefused("band has too few unprotected channels")
        if self.mechanism is None:
            raise OrderRefused(
                f"this region's on-chain mechanism is not known here: {self._unknown_mechanism}"
            )
        refusal = self.mechanism.refusal(bid, self.config.num_channels)
        if refusal is not None:
            raise OrderRefused(refusal)
        digest = self.market.bid_digest(bid)
        if signer(digest, s.sig) != bid.buyer:
            raise OrderRefused("bid signature is not its buyer's for this region and chain")
        if (bid.buyer, bid.nonce) in self.used_nonces or (bid.buyer, bid.nonce) in self._pending:
            raise OrderRefused(f"nonce {bid.nonce} of {bid.buyer} is already used")
        committed = self._spend.get(bid.buyer, 0) + bid.max_price_wei
        # committed cross-region parts settle first, and debit the same escrow
        held = sum(p.price_wei for p in self.committed_parts if p.bid.buyer == bid.buyer)
        available = self.free.get(bid.buyer, 0) - held
        if committed > available:
            raise OrderRefused(
                f"bids of {bid.buyer} total {committed} wei but its free escrow is {available} wei"
            )
        self._spend[bid.buyer] = committed
        self._pending.add((bid.buyer, bid.nonce))
        self._bids[digest] = s
        return digest

    async def submit_bundle(self, spectrum: SignedBid, compute: SignedBid) -> None:
        """Admit a spectrum bid and a compute bid that win together or not at all."""
        for signed in (spectrum, compute):
            _check_fields(_typed(signed, SignedBid))
        if (
            spectrum.bid.kind != Kind.SPECTRUM
            or compute.bid.kind != Kind.COMPUTE
            or spectrum.bid.buyer != compute.bid.buyer
        ):
            raise OrderRefused("a bundle is one buyer's spectrum bid and compute bid")
        first = await self.submit_bid(spectrum)
        try:
            second = await self.submit_bid(compute)
        except OrderRefused:
            self._withdraw(first)
            raise
        self._bundles.append((first, second))

    def _withdraw(self, digest: bytes) -> None:
        signed = self._bids.pop(digest)
        self._spend[signed.bid.buyer] -= signed.bid.max_price_wei
        self._pending.discard((signed.bid.buyer, signed.bid.nonce))

    # -- close ---------------------------------------------------------------------------------
    def close(
        self, weights: dict[str, int] | None = None, bundles: Sequence[tuple[bytes, bytes]] = ()
    ) -> FrozenBook:
        """Freeze the epoch's book (canonical order: by digest) and hash it."""
        if self.epoch is None:
            raise OrderRefused("no epoch is open")
        epoch, (start, end) = self.epoch, self.window(self.epoch)
        offer_digests = tuple(sorted(self._offers))
        bid_digests = tuple(sorted(self._bids))
        offers = tuple(self._offers[d] for d in offer_digests)
        bids = tuple(self._bids[d] for d in bid_digests)
        position = {d: i for i, d in enumerate(bid_digests)}
        book = Book(
            region=self.config.region_id,
            epoch=epoch,
            start=start,
            end=end,
            num_channels=self.config.num_channels,
            protected_mask=self.config.protected_mask,
            offers=tuple(o.offer for o in offers),
            bids=tuple(b.bid for b in bids),
            offer_keys=offer_digests,
            bid_keys=bid_digests,
            occupied_mask=self.taken(start // self.config.epoch_length_s),
            sold_units=tuple(
                self.sold.get(o.offer.struct_hash(self.config.region_id), 0) for o in offers
            ),
            weights=tuple((weights or {}).get(b.bid.buyer, 1) for b in bids),
            bundles=tuple(
                (position[s], position[c])
                for s, c in (*bundles, *self._bundles)
                if s in position and c in position
            ),
        )
        extra = tuple(p for p in self.committed_parts if (p.bid.start, p.bid.end) == (start, end))
        self.committed_parts = [
            p for p in self.committed_parts if (p.bid.start, p.bid.end) != (start, end)
        ]
        extra_digests = [self.market.bid_digest(lease.bid) for lease in extra]
        root = merkle_root([*offer_digests, *bid_digests, *extra_digests])
        state = self.chain_state(
            [*book.offers, *(p.offer for p in extra)], [*book.bids, *(p.bid for p in extra)]
        )
        self.epoch = None
        return FrozenBook(
            self.config.region_id,
            epoch,
            self.mechanism_id,
            offers,
            bids,
            offer_digests,
            bid_digests,
            root,
            book,
            state,
            extra,
            self.steps.due(self.now, MAX_STEPS),
        )


def _typed(obj: Any, cls: type) -> Any:
    """Refuse malformed messages before looking inside them."""
    if not isinstance(obj, cls):
        raise OrderRefused(f"malformed message: expected {cls.__name__}, got {type(obj).__name__}")
    return obj


def _check_fields(signed: SignedOffer | SignedBid) -> None:
    """Every field of the order has the contract's type and range (fields.py)."""
    problem = order_problem(signed)
    if problem is not None:
        raise OrderRefused(f"malformed message: {problem}")
