"""The audit's index (SQLite, ``audit.sqlite``) and its lease exports.

The index holds every row the audit rebuilt, so people and tools can query a
run without reading the chains again. It is a cache, never a source: each
audit rebuilds it, and one whose rows were edited after it was written (its
stored digest no longer matches them) is itself an ``integrity`` violation.

Schema::

    chains(name TEXT, chain_id INT, head_block INT, head_hash TEXT)
    leases(region INT, lease_id TEXT, epoch INT, kind INT, seller TEXT, buyer TEXT,
           nonce INT, first INT, units INT, start INT, "end" INT, price_wei TEXT,
           offer_hash TEXT, bid_digest TEXT, settle_block INT, settle_tx TEXT,
           state TEXT, state_block INT, state_tx TEXT)
    lease_events(region INT, lease_id TEXT, block INT, tx TEXT, event TEXT, detail TEXT)
    payments(chain TEXT, block INT, tx TEXT, who TEXT, amount_wei TEXT, kind TEXT)
    settlements(region INT, epoch INT, block INT, tx TEXT, orderbook_root TEXT,
                leases INT, total_price_wei TEXT, signers INT)
    checkpoints(region INT, idx INT, block_number INT, block_hash TEXT, lease_root TEXT,
                root_block INT, root_tx TEXT)
    rounds(job INT, round INT, block INT, tx TEXT, update_hash TEXT, metrics_hash TEXT,
           metrics TEXT)
    violations(check_name TEXT, chain TEXT, block INT, tx TEXT, lease TEXT, detail TEXT)
    meta(key TEXT PRIMARY KEY, value TEXT)   -- 'digest': sha256 of the data tables

Amounts are decimal strings (wei exceed SQLite integers); hashes are 0x-hex.
Each table but ``violations`` and ``meta`` holds the rows of one type of
:mod:`ledger.audit.result`, its columns the row's fields in order.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .result import AuditResult, Violation

__all__ = ["TABLES", "check_index", "export_leases", "write_index"]

TABLES: dict[str, list[str]] = {
    "chains": ["name", "chain_id", "head_block", "head_hash"],
    "leases": [
        "region",
        "lease_id",
        "epoch",
        "kind",
        "seller",
        "buyer",
        "nonce",
        "first",
        "units",
        "start",
        "end",
        "price_wei",
        "offer_hash",
        "bid_digest",
        "settle_block",
        "settle_tx",
        "state",
        "state_block",
        "state_tx",
    ],
    "lease_events": ["region", "lease_id", "block", "tx", "event", "detail"],
    "payments": ["chain", "block", "tx", "who", "amount_wei", "kind"],
    "settlements": [
        "region",
        "epoch",
        "block",
        "tx",
        "orderbook_root",
        "leases",
        "total_price_wei",
        "signers",
    ],
    "checkpoints": [
        "region",
        "idx",
        "block_number",
        "block_hash",
        "lease_root",
        "root_block",
        "root_tx",
    ],
    "rounds": ["job", "round", "block", "tx", "update_hash", "metrics_hash", "metrics"],
    "violations": ["check_name", "chain", "block", "tx", "lease", "detail"],
}

# the violations table names its first column check_name (``check`` is an SQL keyword)
_VIOLATION_FIELDS = ["check", "chain", "block", "tx", "lease", "detail"]


def _rows(result: AuditResult) -> dict[str, list[tuple[Any, ...]]]:
    data: dict[str, tuple[list[Any], list[str]]] = {
        "chains": (result.chains, TABLES["chains"]),
        "leases": (result.leases, TABLES["leases"]),
        "lease_events": (result.lease_events, TABLES["lease_events"]),
        "payments": (result.payments, TABLES["payments"]),
        "settlements": (result.settlements, TABLES["settlements"]),
        "checkpoints": (result.checkpoints, TABLES["checkpoints"]),
        "rounds": (result.rounds, TABLES["rounds"]),
        "violations": (result.violations, _VIOLATION_FIELDS),
    }
    return {
        table: [tuple(getattr(row, f) for f in fields) for row in rows]
        for table, (rows, fields) in data.items()
    }


def _digest(rows: dict[str, list[tuple[Any, ...]]]) -> str:
    """sha256 of the rebuilt data (every table but ``violations``, which is the verdict)."""
    data = {
        t: sorted((list(row) for row in r), key=lambda x: json.dumps(x, default=str))
        for t, r in sorted(rows.items())
        if t != "violations"
    }
    blob = json.dumps(data, default=str, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _quoted(cols: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in cols)  # "end" is an SQL keyword


def _index_digest(path: Path) -> tuple[str | None, str]:
    """(the digest the index claims, the digest of what it holds)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        claimed = conn.execute("SELECT value FROM meta WHERE key = 'digest'").fetchone()
        rows = {
            t: [tuple(r) for r in conn.execute(f"SELECT {_quoted(cols)} FROM {t}")]
            for t, cols in TABLES.items()
        }
    finally:
        conn.close()
    return (claimed[0] if claimed else None), _digest(rows)


def check_index(path: Path, result: AuditResult) -> list[Violation]:
    """What is wrong with the index at ``path``, about to be rewritten from ``result``.

    An index whose rows no longer match its own digest was edited; one that is
    intact but disagrees with a clean rebuild is stale (it is rebuilt anew).
    """
    if not path.exists():
        return []
    claimed, actual = _index_digest(path)
    if claimed != actual:
        problem = "was edited after it was written (its digest no longer matches its rows)"
    elif claimed != _digest(_rows(result)) and not result.violations:
        problem = "disagrees with the chains (rebuilt anew)"
    else:
        return []
    return [Violation("integrity", "index", None, None, None, f"{path.name} {problem}")]


def write_index(path: Path, result: AuditResult) -> str:
    """Write ``result`` to a fresh index at ``path`` (atomically); returns its digest."""
    rows = _rows(result)
    digest = _digest(rows)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    with conn:
        for table, cols in TABLES.items():
            conn.execute(f"CREATE TABLE {table} ({_quoted(cols)})")
            conn.executemany(
                f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", rows[table]
            )
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('digest', ?)", (digest,))
    conn.close()
    tmp.replace(path)
    return digest


def export_leases(result: AuditResult, fmt: str, path: Path) -> int:
    """Write every rebuilt lease (with its final state) as csv, json or parquet."""
    rows = [asdict(lease) for lease in result.leases]
    columns = TABLES["leases"]
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "json":
        tmp.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    elif fmt == "csv":
        import csv

        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({c: row[c] for c in columns} for row in rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [row[c] for row in rows] for c in columns})
        pq.write_table(table, tmp)
    else:
        raise ConfigError(f"unknown export format {fmt!r}: choose csv, json or parquet")
    tmp.replace(path)
    return len(rows)
