"""Frozen order books kept in a run directory, so every mechanism can replay the same books.

A run given a :class:`BookLog` (``Simulation(..., books=BookLog(out))``) appends each
region-epoch's book, exactly as its committee allocated it, to ``books.jsonl``: one JSON
object a line, every integer written as a decimal string (wei amounts pass 2**53, and
JSON readers differ past it) and every key in hex. A resumed run may write an epoch
twice; :func:`read_books` keeps the last line of each (region, epoch).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.mechanisms import Book
from ledger.records import Bid, Offer

from ..errors import ExperimentError

__all__ = [
    "BOOKS_FILE",
    "BookLog",
    "book_from_json",
    "book_to_json",
    "read_books",
    "record_books",
    "scenario_for_seed",
]

BOOKS_FILE = "books.jsonl"

_OFFER_INTS = ("kind", "lo", "hi", "start", "end", "reserve_wei", "nonce")
_BID_INTS = ("kind", "lo", "hi", "units", "start", "end", "max_price_wei", "nonce")
_BOOK_INTS = ("region", "epoch", "start", "end", "num_channels", "protected_mask", "occupied_mask")


def book_to_json(book: Book) -> dict[str, Any]:
    """``book`` as JSON-safe data: integers as strings, keys as hex."""
    return {
        **{k: str(getattr(book, k)) for k in _BOOK_INTS},
        "offers": [
            {"seller": o.seller, **{k: str(getattr(o, k)) for k in _OFFER_INTS}}
            for o in book.offers
        ],
        "bids": [
            {"buyer": b.buyer, **{k: str(getattr(b, k)) for k in _BID_INTS}} for b in book.bids
        ],
        "offer_keys": [k.hex() for k in book.offer_keys],
        "bid_keys": [k.hex() for k in book.bid_keys],
        "sold_units": [str(u) for u in book.sold_units],
        "weights": [str(w) for w in book.weights],
        "bundles": [[str(s), str(c)] for s, c in book.bundles],
    }


def book_from_json(data: dict[str, Any]) -> Book:
    """The :class:`Book` :func:`book_to_json` wrote."""
    return Book(
        **{k: int(data[k]) for k in _BOOK_INTS},
        offers=tuple(Offer(o["seller"], *(int(o[k]) for k in _OFFER_INTS)) for o in data["offers"]),
        bids=tuple(Bid(b["buyer"], *(int(b[k]) for k in _BID_INTS)) for b in data["bids"]),
        offer_keys=tuple(bytes.fromhex(k) for k in data["offer_keys"]),
        bid_keys=tuple(bytes.fromhex(k) for k in data["bid_keys"]),
        sold_units=tuple(int(u) for u in data["sold_units"]),
        weights=tuple(int(w) for w in data["weights"]),
        bundles=tuple((int(s), int(c)) for s, c in data["bundles"]),
    )


class BookLog:
    """Appends each book it is handed to ``<run>/books.jsonl`` (a run's ``books=``).

    A plain object (a path and nothing open), so a run's checkpoint can pickle it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / BOOKS_FILE

    def __call__(self, book: Book) -> None:
        line = json.dumps(book_to_json(book), separators=(",", ":"))
        with open(self.path, "a") as f:
            f.write(line + "\n")


def read_books(run_dir: Path) -> list[Book]:
    """The run's books by (region, epoch), the last written of each."""
    path = Path(run_dir) / BOOKS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ExperimentError(
            f"{run_dir} has no {BOOKS_FILE}: it was not run by `specledger compare` "
            f"(only compare's runs keep their books); run compare on its scenario"
        ) from None
    books: dict[tuple[int, int], Book] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            book = book_from_json(json.loads(line))
        except (ValueError, KeyError, TypeError) as exc:
            if n == len(text.splitlines()) and not text.endswith("\n"):
                break  # a run killed mid-write leaves its last line cut short
            raise ExperimentError(
                f"{path}: line {n} is not a book ({type(exc).__name__}: {exc}); "
                f"run compare again into a new --out"
            ) from None
        books[(book.region, book.epoch)] = book
    return [books[k] for k in sorted(books)]


def scenario_for_seed(scenario: Path, seed: int, epochs: int | None, folder: Path) -> Path:
    """A copy of ``scenario`` with its seed (and epochs, and the job's rounds cut to
    them) replaced, written in ``folder`` as ``seed-<seed>.toml`` and checked as
    ``simulate`` checks a file."""
    from ..scenario import load_scenario
    from ._toml import dumps

    load_scenario(scenario)  # its own errors first, named by its own name
    data = tomllib.loads(Path(scenario).read_text())
    data["seed"] = seed
    if epochs is not None:
        data["epochs"] = epochs
        job = data.get("job")
        if isinstance(job, dict) and isinstance(job.get("rounds"), int):
            job["rounds"] = min(job["rounds"], epochs)  # a round needs an epoch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"seed-{seed}.toml"
    changed = f"seed = {seed}" + (f", epochs = {epochs}" if epochs is not None else "")
    path.write_text(f"# {scenario} with {changed}\n" + dumps(data))
    load_scenario(path)
    return path


async def record_books(
    scenario: Path, run_dir: Path, progress: Callable[[Any], None] | None = None
) -> Path:
    """Run ``scenario`` into ``run_dir`` keeping its books; a complete run of the same
    scenario there is kept as it is, an interrupted one resumed."""
    from ..run import Simulation
    from ..rundir import SCENARIO_FILE, holds_run, is_complete
    from ..scenario import load_scenario

    same = (run_dir / SCENARIO_FILE).exists() and (
        (run_dir / SCENARIO_FILE).read_bytes() == Path(scenario).read_bytes()
    )
    if same and is_complete(run_dir) and (run_dir / BOOKS_FILE).exists():
        return run_dir
    resume = same and holds_run(run_dir)
    simulation = Simulation(
        load_scenario(scenario), run_dir, progress=progress, resume=resume, books=BookLog(run_dir)
    )
    summary = await simulation.run()
    if summary.get("stopped"):
        raise ExperimentError(f"the run in {run_dir} stopped: {summary['stopped']}")
    if summary.get("interrupted"):
        raise KeyboardInterrupt
    return run_dir
