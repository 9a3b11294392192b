"""The optimal welfare of a book: an exact 0-1 integer programme solved by HiGHS.

Efficiency needs the best any allocation could do on the same book, under the same
rules every mechanism here obeys — the contract's lease rules:

- a bid is served whole or not at all (the contract leases ``bid.units``);
- a spectrum bid takes ``units`` consecutive channels of one offer inside its band
  ``[lo, hi)``, from the book's free, unprotected supply (a channel offered twice
  belongs to its cheapest offer: :func:`ledger.mechanisms.base.supply_units`);
- a compute bid takes ``units`` of one offer's unsold units of its class (``lo``);
- a lease's price lies in [its reserves, its bid], so a placement whose reserves
  exceed the bid is not one;
- a bundled bid (``Book.bundles``) wins only with a partner, each bid at most once.

Variables: ``x[b, j]`` — bid ``b`` takes placement ``j`` — and ``z[pair]``; maximise
``Σ x[b, j] (value(b) - reserves(j))`` subject to one placement per bid, one bid per
channel, an offer's compute units, and ``Σ_j x[s, j] = Σ z[pairs of s]`` for bundled
bids. Every unit-demand or run-shaped book the examples produce (tens of bids, 16
channels) solves in milliseconds. The solver works in floats scaled to the largest
coefficient with a zero MIP gap; the welfare returned is recomputed in integers from
the placements chosen (tests/ledger/test_optimum.py checks it against brute force).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import LedgerError
from ..records import Kind
from .base import Allocation, Award, Book, supply_units

__all__ = ["Optimum", "bundle_partners", "optimal_welfare", "placements"]


@dataclass(frozen=True)
class Optimum:
    """The best allocation of a book, priced at its reserves, and its welfare."""

    welfare_wei: int
    allocation: Allocation
    variables: int  # placements + bundle pairs: the programme's size


@dataclass(frozen=True)
class _Placement:
    bid: int
    offer: int
    first: int  # spectrum: the first channel; compute: 0
    units: int
    channels: tuple[int, ...]  # spectrum channels it takes (empty for compute)
    gain_wei: int  # value of the bid less the reserves of the units


def bundle_partners(book: Book) -> dict[int, set[int]]:
    """Each bundled bid's possible partners: a spectrum bid and a compute bid that the
    book pairs (a pair the wrong way round, or out of range, pairs nothing)."""
    n = len(book.bids)
    partners: dict[int, set[int]] = {}
    for s, c in book.bundles:
        if not (0 <= s < n and 0 <= c < n):
            continue
        if book.bids[s].kind != Kind.SPECTRUM or book.bids[c].kind != Kind.COMPUTE:
            continue
        if book.bids[s].units <= 0 or book.bids[c].units <= 0:
            continue
        partners.setdefault(s, set()).add(c)
        partners.setdefault(c, set()).add(s)
    return partners


def placements(book: Book) -> list[_Placement]:
    """Every way each bid can be served whole, within its bid."""
    spectrum = {u.channel: u for u in supply_units(book, Kind.SPECTRUM)}
    compute_left: dict[int, int] = {}
    for u in supply_units(book, Kind.COMPUTE):
        compute_left[u.offer] = compute_left.get(u.offer, 0) + 1
    found: list[_Placement] = []
    for i, bid in enumerate(book.bids):
        if bid.units <= 0:
            continue
        if bid.kind == Kind.SPECTRUM:
            for first in range(max(0, bid.lo), min(bid.hi, book.num_channels) - bid.units + 1):
                head = spectrum.get(first)
                run = [spectrum.get(first + j) for j in range(1, bid.units)]
                if head is None or any(u is None or u.offer != head.offer for u in run):
                    continue
                reserve = head.reserve_wei * bid.units  # one offer: one reserve
                if bid.max_price_wei >= reserve:
                    channels = tuple(range(first, first + bid.units))
                    found.append(
                        _Placement(
                            i, head.offer, first, bid.units, channels, bid.max_price_wei - reserve
                        )
                    )
        elif bid.kind == Kind.COMPUTE:
            for offer, left in compute_left.items():
                o = book.offers[offer]
                reserve = o.reserve_wei * bid.units
                if o.lo == bid.lo and left >= bid.units and bid.max_price_wei >= reserve:
                    found.append(
                        _Placement(i, offer, 0, bid.units, (), bid.max_price_wei - reserve)
                    )
    return found


def optimal_welfare(book: Book) -> Optimum:
    """``W*`` of ``book`` and an allocation that reaches it (see the module docstring)."""
    import numpy as np  # scipy and numpy load only when an optimum is asked
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_array

    options = placements(book)
    partners = bundle_partners(book)
    pairs = sorted({(s, c) for s in partners for c in partners[s] if book.bids[s].kind == 0})
    if not options:
        return Optimum(0, Allocation("optimum"), 0)
    n = len(options) + len(pairs)
    rows: list[tuple[dict[int, float], float, float]] = []
    by_bid: dict[int, list[int]] = {}
    by_channel: dict[int, list[int]] = {}
    by_offer: dict[int, list[int]] = {}
    for j, p in enumerate(options):
        by_bid.setdefault(p.bid, []).append(j)
        for ch in p.channels:
            by_channel.setdefault(ch, []).append(j)
        if not p.channels:
            by_offer.setdefault(p.offer, []).append(j)
    for js in by_bid.values():
        rows.append((dict.fromkeys(js, 1.0), 0.0, 1.0))
    for js in by_channel.values():
        rows.append((dict.fromkeys(js, 1.0), 0.0, 1.0))
    left: dict[int, int] = {}
    for u in supply_units(book, Kind.COMPUTE):
        left[u.offer] = left.get(u.offer, 0) + 1
    for offer, js in by_offer.items():
        rows.append(({j: float(options[j].units) for j in js}, 0.0, float(left[offer])))
    for b in partners:  # served iff one of its pairs is chosen
        row = {j: 1.0 for j in by_bid.get(b, [])}
        for k, pair in enumerate(pairs):
            if b in pair:
                row[len(options) + k] = -1.0
        rows.append((row, 0.0, 0.0))
    matrix = lil_array((len(rows), n))
    for r, (row, _, _) in enumerate(rows):
        for j, coef in row.items():
            matrix[r, j] = coef
    gains = np.array([p.gain_wei for p in options] + [0] * len(pairs), dtype=float)
    scale = float(gains.max()) or 1.0
    result = milp(
        -gains / scale,
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        constraints=LinearConstraint(
            matrix.tocsr(), [lo for _, lo, _ in rows], [hi for _, _, hi in rows]
        ),
        options={"mip_rel_gap": 0.0, "presolve": True},
    )
    if result.status != 0 or result.x is None:
        raise LedgerError(
            f"the optimum of region {book.region} epoch {book.epoch} was not found "
            f"({result.message}): report this book (it is in the run's books.jsonl)"
        )
    chosen = [options[j] for j in range(len(options)) if result.x[j] > 0.5]
    awards = tuple(
        sorted(
            (
                Award(p.bid, p.offer, p.first, p.units, book.offers[p.offer].reserve_wei * p.units)
                for p in chosen
            ),
            key=lambda a: book.bid_keys[a.bid],
        )
    )
    # the welfare in integers: the gains of the placements chosen
    return Optimum(sum(p.gain_wei for p in chosen), Allocation("optimum", awards), n)
