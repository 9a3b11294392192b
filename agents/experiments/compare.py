"""Every mechanism on the same books: ``specledger compare``'s experiment.

Each region of a run allocates its own book with its own mechanism, so a run alone
compares nothing. Here the run's frozen books (:mod:`agents.experiments.books`) are
replayed through every registered mechanism, and each allocation is measured against
the book's exact optimum (:mod:`ledger.mechanisms.outcome`,
:mod:`ledger.mechanisms.optimum`). ``compare.csv`` has one row per mechanism: each
metric's mean over the region-epochs of every seed, with ``_lo``/``_hi`` its 95%
Student-t interval (:func:`agents.experiments.metrics.mean_interval`).

A book holds the bids of the mechanism its region ran, in that mechanism's bid shape
(one-unit bids, runs of channels, bundles); another mechanism takes only the bids of
its own shape (:meth:`~ledger.mechanisms.Mechanism.refusal`; a bundle mechanism only
bundled bids), and the row's ``note`` says how many it had to leave out — the
efficiency it loses that way is part of the comparison. A mechanism that raises on a
book is measured on the others, and the note says so.

Truthfulness is probed by search (:func:`misreport_gain`): for sampled bids, the bid's
reported value is scanned over multiples of its true value while every other bid stays
as it is; utility = true value of the units won - price. A truthful mechanism admits
no gain (each bid is treated as a unit-demand bidder: a buyer holding several bids
could gain by demand reduction in a uniform-price auction, which this does not probe).
"""

from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ledger.mechanisms import MECHANISMS, Allocation, BidShape, Book, Mechanism
from ledger.mechanisms.optimum import bundle_partners, optimal_welfare
from ledger.mechanisms.outcome import award_value_wei, evaluate

from .metrics import mean_interval

__all__ = [
    "COMPARE_FILE",
    "METRICS",
    "MISREPORT_GRID",
    "MISREPORT_MECHANISMS",
    "compare_books",
    "misreport_gain",
    "run_compare",
    "write_compare",
]

COMPARE_FILE = "compare.csv"
#: the per-book metrics of :class:`ledger.mechanisms.outcome.Outcome` a row reports
METRICS = (
    "efficiency",
    "revenue_wei",
    "buyer_surplus_wei",
    "budget_balance_wei",
    "jain_fairness",
    "utilisation",
    "welfare_wei",
    "optimum_wei",
)
#: the mechanisms whose truthfulness is probed
MISREPORT_MECHANISMS = ("second_price", "double_auction")
#: reported value / true value, scanned for each sampled bid (1 is the truth)
MISREPORT_GRID = (0, 0.25, 0.5, 0.75, 0.9, 0.99, 1, 1.01, 1.1, 1.5, 2, 4)


def _utility(book: Book, allocation: Allocation, bid: int, true_book: Book) -> int:
    """What ``bid`` gains from ``allocation``: true value of its units less its price."""
    return sum(
        award_value_wei(true_book, a) - a.price_wei for a in allocation.awards if a.bid == bid
    )


def misreport_gain(
    mechanism: Mechanism, book: Book, bids: Sequence[int], truth: Allocation | None = None
) -> int:
    """The largest utility gain any of ``bids`` finds by reporting a multiple of its true
    value (:data:`MISREPORT_GRID`) while the other bids stay; 0 when none gains."""
    truth = truth if truth is not None else mechanism.allocate(book)
    best = 0
    for i in bids:
        honest = _utility(book, truth, i, book)
        value = book.bids[i].max_price_wei
        for m in MISREPORT_GRID:
            report = int(Fraction(m) * value)
            if report == value:
                continue
            bids_lied = (*book.bids[:i], replace(book.bids[i], max_price_wei=report))
            lied = replace(book, bids=bids_lied + book.bids[i + 1 :])
            best = max(best, _utility(lied, mechanism.allocate(lied), i, book) - honest)
    return best


def _taken(mechanism: Mechanism, book: Book) -> list[int]:
    """The bids of ``book`` in ``mechanism``'s bid shape."""
    if mechanism.bid_shape == BidShape.BUNDLE:
        return sorted(bundle_partners(book))
    return [
        i
        for i, b in enumerate(book.bids)
        if b.units > 0 and mechanism.refusal(b, book.num_channels) is None
    ]


def _row(
    mechanism: Mechanism,
    books: Sequence[Book],
    optima: Sequence[int],
    misreport_bids: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    samples: dict[str, list[float]] = {m: [] for m in METRICS}
    failed: list[str] = []
    left_out = total = 0
    gain: int | None = None
    trials = 0
    for book, optimum in zip(books, optima, strict=True):
        taken = _taken(mechanism, book)
        left_out += len(book.bids) - len(taken)
        total += len(book.bids)
        try:
            allocation = mechanism.allocate(book)
        except Exception as exc:  # a mechanism of someone else's: measured on the rest
            failed.append(f"region {book.region} epoch {book.epoch}: {type(exc).__name__}: {exc}")
            continue
        outcome = evaluate(book, allocation, optimum)
        for m in METRICS:
            samples[m].append(float(getattr(outcome, m)))
        if mechanism.name in MISREPORT_MECHANISMS and taken:
            sampled = sorted(
                int(i) for i in rng.choice(taken, min(misreport_bids, len(taken)), replace=False)
            )
            trials += len(sampled) * (len(MISREPORT_GRID) - 1)
            gain = max(gain or 0, misreport_gain(mechanism, book, sampled, allocation))
    row: dict[str, Any] = {
        "mechanism": mechanism.name,
        "mechanism_id": mechanism.mechanism_id,
        "bid_shape": mechanism.bid_shape.value,
        "books": len(books) - len(failed),
    }
    for m in METRICS:
        interval = mean_interval(samples[m])
        row[m], row[f"{m}_lo"], row[f"{m}_hi"] = interval.mean, interval.lo, interval.hi
    row["misreport_gain_wei"] = gain if gain is not None else ""
    row["misreport_trials"] = trials if gain is not None else ""
    notes = []
    if left_out:
        why = "not bundled" if mechanism.bid_shape == BidShape.BUNDLE else "not of its shape"
        notes.append(
            f"left out {left_out} of {total} bids ({why}: it takes {mechanism.bid_shape.value} "
            f"bids)"
        )
    if failed:
        notes.append(f"failed on {len(failed)} book(s), first {failed[0]}")
    row["note"] = "; ".join(notes)
    return row


def compare_books(
    books: Sequence[Book],
    mechanisms: Sequence[Mechanism] | None = None,
    *,
    misreport_bids: int = 4,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """One row per mechanism (default: every registered one, by id) over ``books``."""
    chosen = (
        list(mechanisms)
        if mechanisms is not None
        else [MECHANISMS[i]() for i in sorted(MECHANISMS)]
    )
    optima = [optimal_welfare(book).welfare_wei for book in books]
    rows = []
    for mechanism in chosen:
        if progress is not None:
            progress(mechanism.name)
        # by name: an unregistered mechanism has no id (-1)
        rng = np.random.default_rng([seed, zlib.crc32(mechanism.name.encode())])
        rows.append(_row(mechanism, books, optima, misreport_bids, rng))
    return rows


def _cell(key: str, value: Any) -> Any:
    """Wei to the wei (a mean of wei is no finer), ratios to 6 digits, NaN empty."""
    if not isinstance(value, float):
        return value
    if math.isnan(value):
        return ""
    return round(value) if "_wei" in key else f"{value:.6g}"


def write_compare(rows: Sequence[dict[str, Any]], out: Path) -> Path:
    """``out/compare.csv``: the rows, NaN (undefined: too few samples) as empty cells."""
    path = Path(out) / COMPARE_FILE
    fields = list(rows[0]) if rows else ["mechanism"]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(k, v) for k, v in row.items()})
    tmp.replace(path)
    return path


def run_compare(
    scenario: Path,
    out: Path,
    seeds: Sequence[int] | None = None,
    epochs: int | None = None,
    *,
    epoch_done: Callable[[int, Any], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` once per seed (default: its own) keeping its books, replay them
    through every mechanism, write ``out/compare.csv`` and ``out/compare.json``.

    Each seed's run is ``out/runs/seed-<seed>/`` (its scenario beside it): rerunning
    the same command keeps complete runs and resumes interrupted ones."""
    import asyncio

    from ..rundir import write_json
    from ..scenario import load_scenario
    from .books import read_books, record_books, scenario_for_seed
    from .metrics import run_metrics

    seeds = list(seeds) if seeds else [load_scenario(scenario).seed]
    runs = Path(out) / "runs"
    books: list[Book] = []
    per_run: dict[str, Any] = {}
    for seed in seeds:
        if stage is not None:
            stage(f"seed {seed}: running")
        variant = scenario_for_seed(scenario, seed, epochs, runs)
        run_dir = runs / f"seed-{seed}"
        asyncio.run(record_books(variant, run_dir, _per_seed(epoch_done, seed)))
        found = read_books(run_dir)
        books.extend(found)
        per_run[str(seed)] = {"books": len(found), **run_metrics(run_dir)}
    rows = compare_books(
        books, seed=seeds[0], progress=None if stage is None else lambda m: stage(f"replaying: {m}")
    )
    path = write_compare(rows, out)
    result = {
        "scenario": str(scenario),
        "seeds": seeds,
        "epochs": epochs,
        "books": len(books),
        "compare_csv": str(path),
        "runs": per_run,
        "mechanisms": rows,
    }
    write_json(Path(out) / "compare.json", _json_safe(result))
    return result


def _per_seed(
    epoch_done: Callable[[int, Any], None] | None, seed: int
) -> Callable[[Any], None] | None:
    """The run's progress callback: ``epoch_done`` told which seed's run it is."""
    if epoch_done is None:
        return None
    return lambda report: epoch_done(seed, report)


def _json_safe(value: Any) -> Any:
    """NaN as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
