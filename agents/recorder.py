"""The run directory: what a run leaves behind for people and for the audit.

``scenario.toml`` (a copy), ``chains/`` (embedded) and ``ledger.json`` (written
by the ledger), ``metrics.csv`` (one row per region per epoch and one per round,
flushed as they happen), ``rounds.jsonl`` (each confirmed round's metrics, byte
for byte what the root's ``RoundConfirmed.metrics_hash`` hashes),
``summary.json`` and ``history.sha256`` (the sha256 of the full ordered lease
history: the same for the same scenario and seed on the embedded backend).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import IO, Any

from ledger.errors import LedgerError
from ledger.records import Kind, LeaseState
from ledger.region import EpochOutcome
from ledger.tiered import TieredLedger

__all__ = ["METRICS_FIELDS", "Recorder", "lease_history"]

METRICS_FIELDS = [
    "kind",
    "epoch",
    "region",
    "clearing_price_wei",
    "utilisation",
    "welfare_wei",
    "leases",
    "defaults",
    "round",
    "loss",
    "accuracy",
    "delay_s",
    "energy_j",
    "epsilon",
    "devices",
    "note",
]


class Recorder:
    """Owns one run directory; refuses a directory that already holds a run."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._file: IO[str] | None = None
        self._metrics: csv.DictWriter[str] | None = None

    def claim(self, scenario_path: Path) -> None:
        """Take ``out`` for a new run and keep a copy of its scenario."""
        self.out.mkdir(parents=True, exist_ok=True)
        if (self.out / "ledger.json").exists():
            raise LedgerError(f"{self.out} already holds a run: choose another --out")
        shutil.copyfile(scenario_path, self.out / "scenario.toml")

    def open_metrics(self) -> None:
        self._file = open(self.out / "metrics.csv", "w", newline="")  # noqa: SIM115
        self._metrics = csv.DictWriter(self._file, fieldnames=METRICS_FIELDS)
        self._metrics.writeheader()

    def row(self, **values: Any) -> None:
        """One metrics row, on disk at once (a crash loses nothing written before it)."""
        assert self._metrics is not None and self._file is not None, "open_metrics first"
        self._metrics.writerow({k: values.get(k, "") for k in METRICS_FIELDS})
        self._file.flush()

    def region_row(
        self, epoch: int, region: int, outcome: EpochOutcome, channels: int, defaults: int
    ) -> None:
        """A region's epoch: its clearing price, the share of offered channels leased
        (``channels`` offered), welfare, leases, defaults, and why it did not settle."""
        used = sum(rec.units for rec in outcome.leases if rec.kind == Kind.SPECTRUM)
        self.row(
            kind="region",
            epoch=epoch,
            region=region,
            clearing_price_wei=outcome.clearing_price_wei,
            utilisation=round(used / channels, 4) if channels else 0.0,
            welfare_wei=outcome.welfare_wei,
            leases=len(outcome.leases),
            defaults=defaults,
            note="" if outcome.settled else outcome.reason,
        )

    def round_line(self, line: str) -> None:
        """A confirmed round's metrics line, written before its confirmation is sent."""
        with open(self.out / "rounds.jsonl", "a") as f:
            f.write(line + "\n")

    def close_metrics(self) -> None:
        if self._file is not None:
            self._file.close()

    def write_history(self, history: list[dict[str, Any]]) -> str:
        """Write ``history.sha256``; returns the digest of the ordered lease history."""
        blob = json.dumps(history, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(blob).hexdigest()
        (self.out / "history.sha256").write_text(digest + "\n")
        return digest

    def write_summary(self, summary: dict[str, Any]) -> None:
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


async def lease_history(ledger: TieredLedger) -> list[dict[str, Any]]:
    """Every lease of every region in chain order, with its final state."""
    rows = []
    for r, rt in sorted(ledger.regions.items()):
        await rt.sequencer.sync()
        for record in sorted(
            rt.sequencer.records.values(), key=lambda rec: (rec.epoch, rec.lease_id)
        ):
            rows.append(
                {
                    "region": r,
                    "epoch": record.epoch,
                    "kind": record.kind,
                    "seller": record.seller,
                    "buyer": record.buyer,
                    "nonce": record.nonce,
                    "first": record.first,
                    "units": record.units,
                    "start": record.start,
                    "end": record.end,
                    "price_wei": str(record.price_wei),
                    "state": LeaseState(
                        rt.sequencer.lease_words[record.lease_id] & 0xFF
                    ).name.lower(),
                }
            )
    return rows
