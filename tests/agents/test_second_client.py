"""A second client that nobody here wrote agrees with the audit (issue 18, point 6).

``tests/js/read_chain.mjs`` reads a live anvil testnet with ethers.js alone: the
ABIs and runtime code from ``contracts/build/``, the addresses found on the
chains, every lease id, offer hash, EIP-712 digest, signature and lease word
recomputed by ethers. Its event counts, its decoded settlements and the leases
it rebuilds from ``settle()`` calldata must equal what ``specledger audit``
exports (``--export json``), its verdict (``--json``) and its index
(``audit.sqlite``). The comparison is shown to fail: on rows altered after the
fact, and on a lease word a node rewrote (``anvil_setStorageAt`` inside
``evm_snapshot``/``evm_revert``), which ethers reads and the export does not hold.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from agents.run import Simulation
from agents.scenario import load_scenario
from ledger.chain import RpcChains

from .test_run import SMALL

REPO = Path(__file__).resolve().parents[2]
READ_CHAIN = REPO / "tests" / "js" / "read_chain.mjs"
# the audit's lease columns that ethers rebuilds from calldata on its own
LEASE_FIELDS = [
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
]

AUDIT = [sys.executable, "-m", "agents.cli", "audit"]

Json = dict[str, Any]


def _node() -> str:
    node = shutil.which("node")
    assert node, "the second client needs node (Debian: apt-get install nodejs)"
    assert (REPO / "node_modules" / "ethers").is_dir(), "ethers is missing: run `make install`"
    return node


def read_chain(manifest: Path) -> Json:
    """What ethers reads from the testnet of ``manifest``."""
    out = subprocess.run(
        [_node(), str(READ_CHAIN), "--manifest", str(manifest), "--build", "contracts/build"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def audit(run: Path, export: Path) -> tuple[int, Json]:
    """``specledger audit RUN --json --export json --to export``: (exit code, verdict)."""
    out = subprocess.run(
        [*AUDIT, str(run), "--json", "--export", "json", "--to", str(export)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    return out.returncode, json.loads(out.stdout)


def index_rows(path: Path, table: str) -> list[Json]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]
    finally:
        conn.close()


class Differences:
    """The ways ethers' reading differs from the audit's, one line each."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def same(self, what: str, ethers: Any, audit: Any) -> None:
        if ethers != audit:
            self.lines.append(f"{what}: ethers {ethers!r}, audit {audit!r}")


def disagreements(
    seen: Json, verdict: Json, exported: list[Json], index: dict[str, list[Json]], deployed: Json
) -> list[str]:
    """Every way ethers' reading (``seen``) differs from the audit's verdict, lease
    export and index rows (empty: they agree)."""
    d = Differences()
    root = seen["root"]
    d.same("root ledger address", root["address"].lower(), deployed["root"]["address"].lower())
    d.same("checkpoints", root["events"].get("CheckpointPosted", 0), verdict["checkpoints"])
    d.same("confirmed rounds", root["events"].get("RoundConfirmed", 0), verdict["rounds"])
    d.same("regions", root["events"].get("RegionRegistered", 0), len(deployed["regions"]))
    regions = [r for r in seen["regions"] if "missing" not in r]
    where = {r["region"]: (r["market"].lower(), r["chain_id"]) for r in regions}
    for reg in deployed["regions"]:  # found on the chains: the run's record, only compared
        place = (reg["address"].lower(), reg["chain_id"])
        d.same(
            f"region {reg['spec']['region_id']} market", where.get(reg["spec"]["region_id"]), place
        )
    activated = sum(r["events"].get("LeaseActivated", 0) for r in regions)
    d.same("leases", activated, verdict["leases"])
    d.same("settlements", sum(r["calls"]["settle"]["ok"] for r in regions), verdict["settlements"])
    for r in regions:
        at = f"region {r['region']}"
        d.same(f"{at} market code is the artifact", r["code_is_artifact"], True)
        d.same(f"{at} EIP-712 domain", r["domain_separator_matches"], True)
        rows = {row["lease_id"]: row for row in exported if row["region"] == r["region"]}
        d.same(f"{at} LeaseActivated events", r["events"].get("LeaseActivated", 0), len(rows))
        events = Counter(e["event"] for e in index["lease_events"] if e["region"] == r["region"])
        for name in sorted(set(events) | {"Heartbeat", *_ENDINGS}):
            d.same(f"{at} {name} events", r["events"].get(name, 0), events.get(name, 0))
        settled = {s["tx"]: s for s in index["settlements"] if s["region"] == r["region"]}
        _settlements(d, at, r, settled)
        # a lease id is keccak(buyer, bid nonce): the same id may recur in another region
        _leases(d, r, rows)
    return d.lines


def _settlements(d: Differences, at: str, region: Json, settled: dict[str, Json]) -> None:
    """Each settle() call ethers decoded, and each Settled event, against the index."""
    d.same(f"{at} settle() calls", sorted(s["tx"] for s in region["settlements"]), sorted(settled))
    keys = ("epoch", "block", "orderbook_root", "leases", "total_price_wei")
    for s in region["settlements"]:
        row = settled.get(s["tx"], {})
        mine = (s["epoch"], s["block"], s["orderbook_root"], len(s["leases"]), s["total_price_wei"])
        d.same(f"{at} settlement {s['tx']}", _text(mine), _text(tuple(row.get(k) for k in keys)))
        d.same(f"{at} signers of {s['tx']}", len(s["committee_signers"]), row.get("signers"))
    sealed = ("epoch", "leases", "total_price_wei", "signers")
    for ev in region["settled"]:  # the contract's own account of each sealed epoch
        row = settled.get(ev["tx"], {})
        mine = tuple(ev[k] for k in sealed)
        d.same(f"{at} Settled event of {ev['tx']}", mine, _text(tuple(row.get(k) for k in sealed)))


def _leases(d: Differences, region: Json, rows: dict[str, Json]) -> None:
    """Each lease ethers rebuilt from calldata, and each LeaseActivated event, against
    the audit's exported row of it."""
    decoded = [(s, lease) for s in region["settlements"] for lease in s["leases"]]
    d.same(f"region {region['region']} leases in settle() calls", len(decoded), len(rows))
    for s, lease in decoded:
        lid, row = lease["lease_id"], rows.get(lease["lease_id"], {})
        for field in LEASE_FIELDS:
            d.same(f"{lid} {field}", _norm(lease[field]), _norm(row.get(field)))
        settle = (row.get("settle_block"), row.get("settle_tx"))
        d.same(f"{lid} settled in", (s["block"], s["tx"]), settle)
        d.same(f"{lid} state (its word)", lease["state"], row.get("state"))
        d.same(f"{lid} state (its events)", lease["state_by_events"], row.get("state"))
        d.same(f"{lid} word holds its record's hash", lease["word_hash_matches"], True)
        d.same(f"{lid} bid signer", lease["bid_signer"].lower(), lease["buyer"].lower())
        d.same(f"{lid} offer signer", lease["offer_signer"].lower(), lease["seller"].lower())
    for ev in region["lease_activated"]:
        row = rows.get(ev["lease_id"], {})
        for field in LEASE_FIELDS[1:-1]:  # the event has all but the bid digest
            d.same(
                f"{ev['lease_id']} LeaseActivated {field}", _norm(ev[field]), _norm(row.get(field))
            )


_ENDINGS = ("LeaseCompleted", "LeaseRelinquished", "LeaseDefaulted", "LeaseExpired")


def _text(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """ethers prints integers as decimal strings; the index holds ints and strings."""
    return tuple(str(v) if isinstance(v, int) else v for v in values)


def _norm(value: Any) -> Any:
    return str(value).lower() if value is not None else None


def _lease_word_slot(lease_id: str) -> int:
    """Where RegionMarket keeps ``lease_word[lease_id]`` (vyper: keccak(slot ++ key))."""
    import vyper

    source = (REPO / "contracts" / "RegionMarket.vy").read_text()
    layout = vyper.compile_code(source, output_formats=["layout"])["layout"]
    slot = int(layout["storage_layout"]["lease_word"]["slot"])
    return int.from_bytes(keccak(slot.to_bytes(32, "big") + bytes.fromhex(lease_id[2:])), "big")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ([], "give --manifest path/to/testnet.json (written by `specledger testnet up`)"),
        (
            ["--manifest", "/nonexistent/testnet.json"],
            "cannot read the manifest or the artifacts (ENOENT: no such file or directory, "
            "open '/nonexistent/testnet.json'): check --manifest and --build",
        ),
        (
            ["--manifest", "DEAD"],
            "a node of the manifest does not answer (connect ECONNREFUSED 127.0.0.1:9): "
            "is the testnet up? (specledger testnet up)",
        ),
    ],
    ids=["no-manifest", "no-such-file", "node-down"],
)
def test_the_reader_says_what_is_wrong(tmp_path: Path, args: list[str], line: str):
    dead = tmp_path / "testnet.json"  # port 9 (discard): nothing listens there
    dead.write_text(
        json.dumps({"nodes": [{"name": "root", "chain_id": 31337, "url": "http://127.0.0.1:9"}]})
    )
    args = [str(dead) if a == "DEAD" else a for a in args]
    out = subprocess.run(
        [_node(), str(READ_CHAIN), *args], capture_output=True, text=True, timeout=30, cwd=REPO
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [f"read_chain: {line}"]


@pytest.mark.anvil
@pytest.mark.slow
async def test_ethers_reads_the_chains_the_audit_exports(tmp_path: Path):
    from ledger.chain import testnet as tn

    nodes = tn.testnet_up(2, tmp_path / "tn")  # root, region-1, region-2: SMALL's regions
    try:
        manifest = tmp_path / "tn" / "testnet.json"
        (tmp_path / "small.toml").write_text(SMALL)
        run = tmp_path / "run"
        summary = await Simulation(
            load_scenario(tmp_path / "small.toml"), run, chains=RpcChains(manifest)
        ).run()
        # the run directory's audit reads the nodes its ledger.json names, and indexes them
        code, verdict = await asyncio.to_thread(audit, run, tmp_path / "leases.json")
        assert code == 0 and verdict["ok"], verdict["violations"]
        on_nodes = {n.name: n.chain_id for n in tn.load_manifest(manifest)}
        assert {c["name"]: c["chain_id"] for c in verdict["chains"]} == on_nodes
        exported = json.loads((tmp_path / "leases.json").read_text())
        index = {t: index_rows(run / "audit.sqlite", t) for t in ("settlements", "lease_events")}
        deployed = json.loads((run / "ledger.json").read_text())
        seen = await asyncio.to_thread(read_chain, manifest)
        assert seen["client"].startswith("ethers 6.")
        assert disagreements(seen, verdict, exported, index, deployed) == []
        assert [(r["region"], r["chain"]) for r in seen["regions"]] == [
            (1, "region-1"),
            (2, "region-2"),
        ]
        assert verdict["leases"] == summary["leases"] == len(exported) > 0

        # one settlement, lease by lease: ethers' calldata decoding is the export's rows
        region = seen["regions"][0]
        one = max(region["settlements"], key=lambda s: len(s["leases"]))
        rows = [r for r in exported if r["settle_tx"] == one["tx"]]
        assert len(one["leases"]) == len(rows) >= 2
        assert [[_norm(lease[f]) for f in LEASE_FIELDS] for lease in one["leases"]] == [
            [_norm(r[f]) for f in LEASE_FIELDS] for r in rows
        ]
        assert int(one["total_price_wei"]) == sum(int(r["price_wei"]) for r in rows)
        for lease in one["leases"]:  # lease id = keccak(abi.encode(buyer, nonce)), by hand
            words = bytes(12) + bytes.fromhex(lease["buyer"][2:]) + int(lease["nonce"]).to_bytes(32)
            assert lease["lease_id"] == "0x" + keccak(words).hex()

        # the comparison fails where the two differ ...
        altered = copy.deepcopy(exported)
        altered[0]["price_wei"] = str(int(altered[0]["price_wei"]) + 1)
        lid, was, now = altered[0]["lease_id"], exported[0]["price_wei"], altered[0]["price_wei"]
        found = disagreements(seen, verdict, altered, index, deployed)
        assert found == [  # from calldata, and from the LeaseActivated event
            f"{lid} price_wei: ethers '{was}', audit '{now}'",
            f"{lid} LeaseActivated price_wei: ethers '{was}', audit '{now}'",
        ]
        fewer = {**index, "lease_events": index["lease_events"][1:]}
        dropped = index["lease_events"][0]
        found = disagreements(seen, verdict, exported, fewer, deployed)
        region_events = [e for e in index["lease_events"] if e["region"] == dropped["region"]]
        counted = sum(e["event"] == dropped["event"] for e in region_events)
        at = f"region {dropped['region']} {dropped['event']} events"
        assert found == [f"{at}: ethers {counted}, audit {counted - 1}"]

        # ... and where a node rewrote a lease's word (state byte): ethers reads it
        done = next(r for r in exported if r["region"] == 1 and r["state"] == "completed")
        await _word_rewritten_is_seen(manifest, done, verdict, exported, index, deployed)
    finally:
        for node in nodes:
            tn.stop_node(node)


async def _word_rewritten_is_seen(
    manifest: Path, lease: Json, verdict: Json, exported: list[Json], index: Json, deployed: Json
) -> None:
    """A lease word rewritten by the node (no transaction): ethers reads the new state,
    so it disagrees with the export; once the node is reverted, they agree again."""
    market = next(r["address"] for r in deployed["regions"] if r["spec"]["region_id"] == 1)
    slot = hex(_lease_word_slot(lease["lease_id"]))
    node = await RpcChains(manifest).open("region-1")
    try:
        provider = node.web3.provider
        stored = await provider.make_request("eth_getStorageAt", [market, slot, "latest"])
        word = int(stored["result"], 16)
        assert word & 0xFF == 2  # completed
        snapshot = (await provider.make_request("evm_snapshot", []))["result"]
        active = "0x" + (word & ~0xFF | 1).to_bytes(32, "big").hex()
        await provider.make_request("anvil_setStorageAt", [market, slot, active])
        seen = await asyncio.to_thread(read_chain, manifest)
        await provider.make_request("evm_revert", [snapshot])
        found = disagreements(seen, verdict, exported, index, deployed)
        assert found == [
            f"{lease['lease_id']} state (its word): ethers 'active', audit 'completed'"
        ]
        again = await asyncio.to_thread(read_chain, manifest)
        assert disagreements(again, verdict, exported, index, deployed) == []
    finally:
        await node.close()
