"""The checks of the root chain's records against the shards and the run's files.

- ``checkpoint``: each ``CheckpointPosted`` must name a block the shard really has,
  by hash, and a lease-state root equal to the one rebuilt from the leases'
  words as of that block (see :mod:`ledger.audit.history`);
- ``cross``: a committed cross-region lease must be active in every region it
  names, an aborted one in none;
- ``metrics``: each ``RoundConfirmed`` metrics hash must be the sha256 of a line
  of the run's ``rounds.jsonl`` (when the run has one).

Each function adds what it finds to ``found`` and returns the rows it read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..chain import Event
from ..merkle import LeaseTree
from .history import LeaseHistory
from .read import ChainRead, hex0x
from .result import CheckpointRow, LeaseRow, RoundRow, Violation

__all__ = ["check_checkpoints", "check_cross_region", "check_rounds"]


def _on_root(check: str, ev: Event, lease: str | None, detail: str) -> Violation:
    return Violation(check, "root", ev.block_number, ev.tx_hash, lease, detail)


def check_checkpoints(
    root: ChainRead,
    shards: dict[int, ChainRead],
    histories: dict[int, LeaseHistory],
    found: list[Violation],
) -> list[CheckpointRow]:
    rows = []
    for ev in root.events:
        if ev.name != "CheckpointPosted":
            continue
        a = ev.args
        region, number = int(a["region"]), int(a["block_number"])
        row = CheckpointRow(
            region=region,
            idx=int(a["index"]),
            block_number=number,
            block_hash=hex0x(a["block_hash"]),
            lease_root=hex0x(a["lease_root"]),
            root_block=ev.block_number,
            root_tx=ev.tx_hash,
        )
        rows.append(row)
        read = shards.get(region)
        if read is None:  # its chain is missing: already an integrity violation
            continue

        block = read.blocks.get(number)
        if block is None or block.hash != row.block_hash:
            found.append(
                _on_root(
                    "checkpoint",
                    ev,
                    None,
                    f"checkpoint {row.idx} of region {region} names block {number} "
                    f"hash {row.block_hash}, the shard has "
                    f"{block.hash if block else 'no such block'}",
                )
            )
            continue
        history = histories.get(region)
        words = history.words_at(number) if history is not None else {}
        if hex0x(LeaseTree(words).root) != row.lease_root:
            found.append(
                _on_root(
                    "checkpoint",
                    ev,
                    None,
                    f"checkpoint {row.idx} of region {region}: lease-state root does "
                    f"not match the one rebuilt from the shard's history",
                )
            )
    return rows


def check_cross_region(root: ChainRead, leases: list[LeaseRow], found: list[Violation]) -> None:
    """A cross-region lease's parts are its regions' bid digests; it is all or nothing."""
    prepared = {}
    final: dict[bytes, str] = {}
    for ev in root.events:
        xid = bytes(ev.args.get("xlease_id", b""))
        if ev.name == "CrossPrepared":
            prepared[xid] = ev
        elif ev.name == "CrossCommitted":
            final[xid] = "committed"
        elif ev.name == "CrossAborted":
            final[xid] = "aborted"
    active = {(lease.region, lease.bid_digest) for lease in leases if lease.state != "none"}
    for xid, ev in prepared.items():
        state = final.get(xid, "prepared")
        parts = [
            (int(r), hex0x(p)) for r, p in zip(ev.args["regions"], ev.args["parts"], strict=True)
        ]
        present = [p for p in parts if p in active]
        if state == "committed" and len(present) != len(parts):
            missing = [r for r, p in parts if (r, p) not in active]
            found.append(
                _on_root(
                    "cross",
                    ev,
                    hex0x(xid),
                    f"committed cross-region lease is not active in regions {missing}",
                )
            )
        if state == "aborted" and present:
            found.append(
                _on_root(
                    "cross",
                    ev,
                    hex0x(xid),
                    f"aborted cross-region lease is active in regions {[r for r, _ in present]}",
                )
            )


def check_rounds(
    root: ChainRead, rounds_file: Path | None, found: list[Violation]
) -> list[RoundRow]:
    """Every confirmed round, with the line of ``rounds_file`` its metrics hash names."""
    lines = {}
    if rounds_file is not None and rounds_file.exists():
        for line in rounds_file.read_text().splitlines():
            lines[hex0x(hashlib.sha256(line.encode()).digest())] = line
    rows = []
    for ev in root.events:
        if ev.name != "RoundConfirmed":
            continue
        a = ev.args
        metrics_hash = hex0x(a["metrics_hash"])
        confirmed = lines.get(metrics_hash)
        if rounds_file is not None and confirmed is None:
            found.append(
                _on_root(
                    "metrics",
                    ev,
                    None,
                    f"round {a['round']} of job {a['job_id']}: no line of "
                    f"{rounds_file.name} hashes to the confirmed {metrics_hash}",
                )
            )
        rows.append(
            RoundRow(
                job=int(a["job_id"]),
                round=int(a["round"]),
                block=ev.block_number,
                tx=ev.tx_hash,
                update_hash=hex0x(a["update_hash"]),
                metrics_hash=metrics_hash,
                metrics=confirmed,
            )
        )
    return rows
