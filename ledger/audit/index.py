"""The audit's index (SQLite, ``audit.sqlite``), bound to the heads it was built from.

The index holds every row the audit rebuilt, so people and tools can query a
run without reading the chains again. It is a cache, never a source, and it is
an alarm: each audit binds the index to the heads it read (every chain's head
block number and hash, the ``chains`` table) and the next audit compares.

- The chains only grew (each stored head block still has its stored hash, and
  every row indexed up to those heads is rebuilt unchanged): the index is
  extended to the new heads, quietly.
- Something already indexed changed (a stored head's hash, an indexed row, or
  the rows no longer hash to the digest stored with them): an alarm is raised.
  It is kept in the index (``alarms``) and reported as an ``integrity``
  violation by every later audit, until ``specledger audit RUN_DIR --reindex``
  rebuilds the index from the chains and clears it. Running again never does.

A row belongs to the chain and block it was read at (a lease: its region's
settlement block; a checkpoint: the root block that posted it). A lease whose
state changed after the indexed head is compared as it was then (active); a
round's ``metrics`` column (read from the run's ``rounds.jsonl``, which the
``metrics`` check verifies on every audit) is not compared. When a chain
indexed before is not read at all (its region's chain is missing: already an
``integrity`` violation), the index is left as it was.

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
    alarms(raised_at TEXT, chain TEXT, block INT, tx TEXT, lease TEXT, detail TEXT)
    meta(key TEXT PRIMARY KEY, value TEXT)   -- 'digest': sha256 of the data tables

Amounts are decimal strings (wei exceed SQLite integers); hashes are 0x-hex.
Each table but ``violations``, ``alarms`` and ``meta`` holds the rows of one type
of :mod:`ledger.audit.result`, its columns the row's fields in order.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .result import AuditResult, Violation

__all__ = ["TABLES", "export_leases", "keep_index", "read_index", "write_index"]

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
    "alarms": ["raised_at", "chain", "block", "tx", "lease", "detail"],
}

#: the tables of rows rebuilt from the chains (each an ``AuditResult`` field of that name)
ROW_TABLES = (
    "chains",
    "leases",
    "lease_events",
    "payments",
    "settlements",
    "checkpoints",
    "rounds",
)

# the violations table names its first column check_name (``check`` is an SQL keyword)
_VIOLATION_FIELDS = ["check", "chain", "block", "tx", "lease", "detail"]
_SHOWN = 10  # rows that differ, named one by one in alarms; the rest are counted

Row = tuple[Any, ...]
Alarm = tuple[str | None, int | None, str | None, str | None, str]  # chain, block, tx, lease


def _rows(result: AuditResult, alarms: Iterable[Row] = ()) -> dict[str, list[Row]]:
    rows = {
        table: [tuple(getattr(row, f) for f in TABLES[table]) for row in getattr(result, table)]
        for table in ROW_TABLES
    }
    rows["violations"] = [
        tuple(getattr(v, f) for f in _VIOLATION_FIELDS) for v in result.violations
    ]
    rows["alarms"] = list(alarms)
    return rows


def _digest(rows: dict[str, list[Row]]) -> str:
    """sha256 of the data: every table but ``violations`` (the verdict), and ``alarms``
    only when it holds any (an index written before alarms existed keeps its digest)."""
    data = {
        t: sorted((list(row) for row in r), key=lambda x: json.dumps(x, default=str))
        for t, r in sorted(rows.items())
        if t != "violations" and (t != "alarms" or r)
    }
    blob = json.dumps(data, default=str, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _quoted(cols: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in cols)  # "end" is an SQL keyword


def read_index(path: Path) -> tuple[str | None, dict[str, list[Row]]]:
    """(the digest the index at ``path`` claims, its rows by table); raises
    ``sqlite3.Error`` when it is no index (``alarms`` may be missing: none raised)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        claimed = conn.execute("SELECT value FROM meta WHERE key = 'digest'").fetchone()
        rows = {
            t: [tuple(r) for r in conn.execute(f"SELECT {_quoted(cols)} FROM {t}")]
            for t, cols in TABLES.items()
            if t != "alarms" or t in tables
        }
    finally:
        conn.close()
    rows.setdefault("alarms", [])
    return (claimed[0] if claimed else None), rows


def write_index(path: Path, result: AuditResult, alarms: Iterable[Row] = ()) -> str:
    """Write ``result`` (and ``alarms`` still raised) to a fresh index at ``path``,
    atomically; returns its digest."""
    rows = _rows(result, alarms)
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


def keep_index(path: Path, result: AuditResult, *, reindex: bool = False) -> None:
    """Compare the index at ``path`` with ``result`` and write it again (module docstring).

    Every alarm still raised (new or kept) is added to ``result.violations``; what
    was done besides checking (a rebuild, an index left alone) to ``result.notes``.
    """
    stored: dict[str, list[Row]] | None = None
    claimed, problem = None, None
    if path.exists():
        try:
            claimed, stored = read_index(path)
        except sqlite3.Error as exc:
            problem = f"cannot be read as an index ({exc})"
    kept = stored["alarms"] if stored is not None else []
    if reindex:
        write_index(path, result)
        cleared = f"{len(kept)} alarm(s) cleared" if kept else "no alarm was raised"
        result.notes.append(f"{path.name} rebuilt from the chains (--reindex): {cleared}")
        return
    new: list[Alarm] = [(None, None, None, None, problem)] if problem else []
    if stored is not None:
        read = {c.name for c in result.chains}
        unread = sorted({row[0] for row in stored["chains"]} - read)
        if unread:  # nothing to compare those with: keep the index bound to what it had
            result.violations.extend(_violation(path, a) for a in kept)
            result.notes.append(f"{path.name} left as it was: {', '.join(unread)} not read")
            return
        new = _changes(claimed, stored, result)
    raised = datetime.now(UTC).isoformat(timespec="seconds")
    alarms = [*kept, *((raised, *a) for a in new)]
    result.violations.extend(_violation(path, a) for a in alarms)
    write_index(path, result, alarms)


def _violation(path: Path, alarm: Row) -> Violation:
    raised, chain, block, tx, lease, detail = alarm
    return Violation(
        "integrity",
        chain or "index",
        block,
        tx,
        lease,
        f"{path.name} {detail} [alarm raised {raised}; it stays until "
        f"`specledger audit RUN_DIR --reindex`]",
    )


def _changes(claimed: str | None, stored: dict[str, list[Row]], result: AuditResult) -> list[Alarm]:
    """What changed of what ``stored`` indexed, as alarms (chain, block, tx, lease, detail)."""
    found: list[Alarm] = []
    if claimed != _digest(stored):
        detail = "was edited after it was written (its digest no longer matches its rows)"
        found.append((None, None, None, None, detail))
    now = {c.name: c for c in result.chains}
    heads: dict[str, int] = {}  # the chains whose indexed head still holds
    for name, chain_id, block, block_hash in stored["chains"]:
        chain, hash_now = now[name], result.block_hashes.get(name, {}).get(block)
        if chain.chain_id != chain_id:
            detail = f"indexed chain id {chain_id} for this chain; it has {chain.chain_id} now"
        elif hash_now is None:
            detail = f"indexed up to block {block}; the chain now ends at {chain.head_block}"
        elif hash_now != block_hash:
            detail = f"indexed block {block} with hash {block_hash}; it has hash {hash_now} now"
        else:
            heads[name] = block
            continue
        found.append((name, block, None, None, detail))
    rebuilt = _rows(result)
    differ: list[Alarm] = []
    for table in ROW_TABLES[1:]:
        was = Counter(x for r in stored[table] if (x := _as_of(table, r, heads)) is not None)
        got = Counter(x for r in rebuilt[table] if (x := _as_of(table, r, heads)) is not None)
        differ.extend(_differences(table, list((was - got).elements()), (got - was).elements()))
    found.extend(differ[:_SHOWN])
    if len(differ) > _SHOWN:
        more = f"holds {len(differ) - _SHOWN} more rows that differ from the chains"
        found.append((None, None, None, None, more))
    return found


def _place(table: str, row: dict[str, Any]) -> tuple[str, Any]:
    """The chain and block a row of ``table`` was read at."""
    if table == "payments":
        return str(row["chain"]), row["block"]
    if table in ("checkpoints", "rounds"):
        return "root", row["root_block" if table == "checkpoints" else "block"]
    return f"region-{row['region']}", row["settle_block" if table == "leases" else "block"]


def _as_of(table: str, row: Row, heads: dict[str, int]) -> Row | None:
    """``row`` as it was at the indexed heads (None: read later, or on a chain whose
    indexed head no longer holds, which is an alarm of its own)."""
    r = dict(zip(TABLES[table], row, strict=True))
    chain, block = _place(table, r)
    head = heads.get(chain)
    if head is None or (isinstance(block, int) and block > head):
        return None
    if table == "leases" and isinstance(r["state_block"], int) and r["state_block"] > head:
        r.update(state="active", state_block=r["settle_block"], state_tx=r["settle_tx"])
    if table == "rounds":
        r["metrics"] = None  # from rounds.jsonl, not the chains (the metrics check's)
    return tuple(r.values())


def _where(table: str, row: Row) -> tuple[str, Any, Any, Any]:
    r = dict(zip(TABLES[table], row, strict=True))
    chain, block = _place(table, r)
    tx = r.get("settle_tx", r.get("tx", r.get("root_tx")))
    return chain, block, tx, r.get("lease_id")


def _differences(table: str, gone: list[Row], lacking: Iterable[Row]) -> list[Alarm]:
    """An indexed row the chains no longer give, one they give that the index lacks,
    and (the two at one place) a row that differs, with its columns."""
    found: list[Alarm] = []
    for row in lacking:
        place = _where(table, row)
        twin = next((g for g in gone if _where(table, g) == place), None)
        if twin is None:
            found.append((*place, f"lacks a {table} row the chains give up to its head"))
            continue
        gone.remove(twin)
        cols = [
            f"{c} {a!r} (indexed) vs {b!r} (chains)"
            for c, a, b in zip(TABLES[table], twin, row, strict=True)
            if a != b
        ]
        found.append(
            (*place, f"holds a {table} row that differs from the chains: {'; '.join(cols)}")
        )
    found.extend(
        (*_where(table, g), f"holds a {table} row the chains no longer give") for g in gone
    )
    return found


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
