"""``proportional_fair``: a non-price share of the supply by weight.

For regions that do not want prices to decide: each bid gets a share of the
units of its kind proportional to its weight (the book's per-bid weight,
default 1), never more than it asked for (water-filling: what a capped bid
leaves goes to the others, by largest remainder, ties by key). Spectrum shares
are contiguous runs of channels inside one offer. Each winner pays the
reserves of the units it gets, and only if its bid covers them.
"""

from __future__ import annotations

from fractions import Fraction

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


def _runs(units: list[Unit], keys: tuple[bytes, ...]) -> list[list[Unit]]:
    """Contiguous channel runs within one offer, by offer key then channel."""
    runs: list[list[Unit]] = []
    for u in sorted(units, key=lambda u: (keys[u.offer], u.channel)):
        if runs and runs[-1][-1].offer == u.offer and runs[-1][-1].channel + 1 == u.channel:
            runs[-1].append(u)
        else:
            runs.append([u])
    return runs


class ProportionalFair(Mechanism):
    mechanism_id = 2
    name = "proportional_fair"

    def allocate(self, book: Book) -> Allocation:
        awards: list[Award] = []
        for kind, cls in markets(book):
            units = supply_units(book, kind, cls)
            idx = sorted(
                (
                    i
                    for i, b in enumerate(book.bids)
                    if b.kind == kind and (cls is None or b.lo == cls)
                ),
                key=lambda i: book.bid_keys[i],
            )
            weight = {i: (book.weights[i] if book.weights else 1) for i in idx}
            share = _shares(
                {i: book.bids[i].units for i in idx},
                weight,
                len(units),
                {i: book.bid_keys[i] for i in idx},
            )
            pools = (
                _runs(units, book.offer_keys) if kind == 0 else _by_offer(units, book.offer_keys)
            )
            for i in idx:
                want = share[i]
                if want == 0:
                    continue
                # a lease is one contiguous block of one offer: take the first pool that fits,
                # shrinking the share until one does
                bid = book.bids[i]
                for size in range(want, 0, -1):
                    pool = next(
                        (
                            p
                            for p in pools
                            if len(p) >= size and (kind == 1 or _inside(p[:size], bid.lo, bid.hi))
                        ),
                        None,
                    )
                    if pool is None:
                        continue
                    taken, rest = pool[:size], pool[size:]
                    price = sum(u.reserve_wei for u in taken)
                    if price <= bid.max_price_wei:
                        awards.append(
                            Award(
                                i, taken[0].offer, taken[0].channel if kind == 0 else 0, size, price
                            )
                        )
                        pools[pools.index(pool)] = rest
                    break
        return Allocation(self.name, tuple(sorted(awards, key=lambda a: book.bid_keys[a.bid])))


def _by_offer(units: list[Unit], keys: tuple[bytes, ...]) -> list[list[Unit]]:
    pools: dict[int, list[Unit]] = {}
    for u in units:
        pools.setdefault(u.offer, []).append(u)
    return [pools[k] for k in sorted(pools, key=lambda k: keys[k])]


def _inside(run: list[Unit], lo: int, hi: int) -> bool:
    return run[0].channel >= lo and run[-1].channel < hi
