"""specledger audit: rebuilds from the chains, verifies, detects tampering, reports."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import rlp

from agents.run import Simulation
from agents.scenario import load_scenario
from ledger.audit import (
    Audit,
    ChainRow,
    CheckpointRow,
    LeaseEventRow,
    LeaseRow,
    PaymentRow,
    RoundRow,
    SettlementRow,
    Violation,
    run_audit,
)
from ledger.audit.escrow import Escrow
from ledger.audit.index import TABLES
from ledger.chain import EmbeddedChains, RpcChains
from ledger.config import RegionConfig
from ledger.crossregion import CrossRegionLease
from ledger.merkle import EMPTY_ROOT
from ledger.records import Role
from ledger.region import Trader
from ledger.tiered import TieredLedger, derive_key

from .cdp import Browser
from .test_run import SMALL

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def clean_run() -> Path:
    """One simulated run shared by the module (tests copy it before tampering)."""
    tmp = Path(tempfile.mkdtemp(prefix="audit-run-"))
    (tmp / "small.toml").write_text(SMALL)
    asyncio.run(Simulation(load_scenario(tmp / "small.toml"), tmp / "run").run())
    yield tmp / "run"
    shutil.rmtree(tmp)


@pytest.fixture
def run(clean_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(clean_run, copy)
    (copy / "audit.sqlite").unlink(missing_ok=True)
    return copy


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


# -- the package itself ---------------------------------------------------------------------


def test_rows_are_the_index_tables_columns():
    """The index schema (and the exports) are the row types' fields, in order."""
    rows = {
        "chains": ChainRow,
        "leases": LeaseRow,
        "lease_events": LeaseEventRow,
        "payments": PaymentRow,
        "settlements": SettlementRow,
        "checkpoints": CheckpointRow,
        "rounds": RoundRow,
    }
    for table, row in rows.items():
        assert [f.name for f in dataclasses.fields(row)] == TABLES[table], table
    assert [f.name for f in dataclasses.fields(Violation)][1:] == TABLES["violations"][1:]


@pytest.mark.slow
def test_a_run_whose_last_steps_go_in_a_lifecycle_batch_audits_clean(tmp_path: Path):
    """With a round in every epoch, the last epoch's completions ride on no settlement:
    they go in a ``lifecycle`` batch at the end, whose quorum the audit checks."""
    assert "rounds = 4" in SMALL
    (tmp_path / "small.toml").write_text(SMALL.replace("rounds = 4", "rounds = 5"))
    summary = asyncio.run(
        Simulation(load_scenario(tmp_path / "small.toml"), tmp_path / "run").run()
    )
    assert summary["chain_transactions"]["lifecycle"] >= 1
    assert set(summary["lease_states"]) <= {"completed", "defaulted"}  # none left active
    out = cli(str(tmp_path / "run"), "--json")
    verdict = json.loads(out.stdout)
    assert out.returncode == 0 and verdict["ok"] and verdict["violations"] == [], out.stdout
    assert verdict["leases_verified"] == summary["leases"]


@pytest.mark.slow
def test_clean_run_passes_and_is_rebuilt_from_the_chains(run: Path):
    out = cli(str(run), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    verdict = json.loads(out.stdout)
    summary = json.loads((run / "summary.json").read_text())
    assert verdict["ok"] and verdict["violations"] == []
    assert verdict["leases"] == summary["leases"] == verdict["leases_verified"]
    assert verdict["rounds"] == summary["rounds"] and verdict["checkpoints"] > 0
    db = sqlite3.connect(run / "audit.sqlite")
    states = dict(db.execute("SELECT state, count(*) FROM leases GROUP BY state").fetchall())
    assert states == summary["lease_states"]
    assert db.execute("SELECT count(*) FROM lease_events WHERE event = 'Heartbeat'").fetchone()[0]
    assert db.execute("SELECT count(*) FROM payments WHERE kind = 'paid-seller'").fetchone()[0]
    db.close()
    again = cli(str(run))  # the index it wrote agrees with a second rebuild
    assert again.returncode == 0 and again.stdout.strip().startswith("OK:")


@pytest.mark.slow
def test_at_block_gives_the_state_as_of_a_root_block(run: Path):
    full = json.loads(cli(str(run), "--json").stdout)
    middle = full["chains"][0]["head_block"] // 2
    early = json.loads(cli(str(run), "--json", "--at-block", str(middle)).stdout)
    assert early["ok"] and early["at_block"] == middle
    assert early["chains"][0]["head_block"] == middle
    assert early["leases"] < full["leases"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_export(run: Path, tmp_path: Path, fmt: str):
    path = tmp_path / f"leases.{fmt}"
    assert cli(str(run), "--export", fmt, "--to", str(path)).returncode == 0
    expected = json.loads((run / "summary.json").read_text())["leases"]
    if fmt == "csv":
        with path.open() as f:
            rows = list(csv.DictReader(f))
    elif fmt == "json":
        rows = json.loads(path.read_text())
    else:
        rows = pq.read_table(path).to_pylist()
    assert len(rows) == expected and {"lease_id", "state", "price_wei"} <= set(rows[0])


# -- tampering ------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_modified_block_header_is_detected(run: Path):
    path = run / "chains" / "region-1.chain.sqlite"
    db = sqlite3.connect(path)
    from eth.db.atomic import AtomicDB
    from eth.db.chain import ChainDB

    from ledger.chain.backends._sqlite_db import SQLiteKV

    kv = SQLiteKV(path, read_only=True)
    block_hash = ChainDB(AtomicDB(kv)).get_canonical_block_hash(5)
    kv.close()
    fields = rlp.decode(db.execute("SELECT v FROM kv WHERE k = ?", (block_hash,)).fetchone()[0])
    fields[11] = rlp.sedes.big_endian_int.serialize(int.from_bytes(fields[11], "big") + 1)
    with db:
        db.execute("UPDATE kv SET v = ? WHERE k = ?", (rlp.encode(fields), block_hash))
    db.close()
    out = cli(str(run))
    assert out.returncode == 1
    assert "[integrity] region-1, block 5" in out.stdout
    assert "stored header does not hash to its key" in out.stdout


@pytest.mark.slow
def test_a_truncated_chain_file_is_detected(run: Path):
    path = run / "chains" / "region-2.chain.sqlite"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    out = cli(str(run))
    assert out.returncode == 1 and "[integrity] region-2" in out.stdout


async def _first_settlement(path: Path) -> tuple[int, bytes, bytes]:
    """(block, calldata, first log's data) of the first settlement in a chain file."""
    chains = EmbeddedChains(path.parent, read_only=True)
    backend = await chains.open(path.name.removesuffix(".chain.sqlite"))
    try:
        w3 = backend.web3
        for n in range(int(await w3.eth.block_number) + 1):
            for tx in (await w3.eth.get_block(n, full_transactions=True))["transactions"]:
                receipt = await w3.eth.get_transaction_receipt(tx["hash"])  # type: ignore[index]
                data = bytes(tx.get("input", tx.get("data", b"")))  # type: ignore[union-attr]
                if len(data) > 1000 and receipt["logs"]:
                    return n, data, bytes(receipt["logs"][-1]["data"])
    finally:
        await backend.close()
    raise AssertionError("no settlement in the file")


def _flip_in_blobs(path: Path, needle: bytes) -> int:
    """Change one byte of ``needle`` in every stored value that holds it; how many."""
    db = sqlite3.connect(path)
    rows = [(k, v) for k, v in db.execute("SELECT k, v FROM kv") if needle in v]
    with db:
        for k, v in rows:
            at = v.index(needle) + len(needle) // 2
            db.execute(
                "UPDATE kv SET v = ? WHERE k = ?", (v[:at] + bytes([v[at] ^ 1]) + v[at + 1 :], k)
            )
    db.close()
    return len(rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("a settlement's calldata (one byte of a price)", "transactions do not match"),
        ("a settlement's event log (one byte of its data)", "receipts do not match"),
    ],
    ids=["calldata-rewritten", "event-log-rewritten"],
)
def test_a_chain_file_altered_after_the_run_is_detected(run: Path, kind: str, detail: str):
    path = run / "chains" / "region-2.chain.sqlite"
    block, calldata, log = asyncio.run(_first_settlement(path))
    needle = calldata[-200:-100] if "calldata" in kind else log[-64:]
    assert _flip_in_blobs(path, needle) >= 1, kind
    out = cli(str(run))
    assert out.returncode == 1, out.stdout
    assert f"[integrity] region-2, block {block}" in out.stdout and detail in out.stdout, kind


@pytest.mark.slow
def test_an_edited_index_is_detected(run: Path):
    assert cli(str(run)).returncode == 0
    with sqlite3.connect(run / "audit.sqlite") as db:
        db.execute("UPDATE leases SET price_wei = '1' WHERE rowid = 1")
    for _ in range(2):  # an alarm: the next audit does not clear it
        out = cli(str(run))
        assert out.returncode == 1 and "audit.sqlite was edited" in out.stdout
        assert (
            "audit.sqlite holds a leases row that differs from the chains: price_wei" in out.stdout
        )
    out = cli(str(run), "--reindex")
    assert out.returncode == 0 and "2 alarm(s) cleared" in out.stdout, out.stdout
    assert cli(str(run)).returncode == 0


@pytest.mark.slow
def test_metrics_that_do_not_match_the_root_are_detected(run: Path):
    lines = (run / "rounds.jsonl").read_text().splitlines()
    lines[0] = lines[0].replace('"devices": ', '"devices": 1')
    (run / "rounds.jsonl").write_text("\n".join(lines) + "\n")
    out = cli(str(run))
    assert out.returncode == 1 and "[metrics] root" in out.stdout


@pytest.mark.slow
async def test_quorum_and_signature_checks_can_fail(run: Path, monkeypatch):
    original = Audit._region

    async def no_committee(self, region):
        # as if nobody who signed were in the committee
        return await original(self, dataclasses.replace(region, members=()))

    monkeypatch.setattr(Audit, "_region", no_committee)
    result = await run_audit(run, index=None)
    assert {v.check for v in result.violations} == {"quorum"}
    monkeypatch.undo()
    monkeypatch.setattr("ledger.bindings.RegionMarket.bid_digest", lambda self, bid: b"\1" * 32)
    result = await run_audit(run, index=None)
    checks = {v.check for v in result.violations}
    assert "signature" in checks and all(
        v.lease for v in result.violations if v.check == "signature"
    )


@pytest.mark.slow
async def test_escrow_check_can_fail(run: Path, monkeypatch):
    original = Escrow.apply

    def hide_deposits(self, ev, tx):
        if ev.name == "Deposited":
            return None
        return original(self, ev, tx)

    monkeypatch.setattr(Escrow, "apply", hide_deposits)
    result = await run_audit(run, index=None)
    # the balance after each block, and each participant's free escrow at the head
    assert {v.check for v in result.violations} == {"escrow", "state"}
    assert all(v.tx and v.block for v in result.violations if v.check == "escrow" and v.tx)
    assert any(v.check == "state" and "free(" in v.detail for v in result.violations)


# -- root: checkpoints and cross-region leases -------------------------------------------------
async def _ledger_with_traders(tmp_path: Path) -> tuple[TieredLedger, dict]:
    ledger = await TieredLedger.create(
        tmp_path / "run",
        [RegionConfig(1), RegionConfig(2)],
        seed=2,
        chains=EmbeddedChains(tmp_path / "run" / "chains", genesis_timestamp=1_900_000_000),
    )
    parties = {}
    for r in (1, 2):
        rt = ledger.regions[r]
        sat = Trader(derive_key(4, f"sat-{r}"), rt.market, rt.client)
        await sat.join(Role.SATELLITE, bond_wei=10**18)
        buyer = Trader(derive_key(4, f"buyer-{r}"), rt.market, rt.client)
        await buyer.join(Role.COORDINATOR, deposit_wei=10**18)
        parties[r] = (sat, buyer)
    return ledger, parties


async def test_bogus_checkpoint_and_broken_cross_region_leases_are_reported(tmp_path: Path):
    from ledger.crossregion import Part
    from ledger.eip712 import quorum_sign

    ledger, parties = await _ledger_with_traders(tmp_path)
    head = int((await ledger.root_backend.web3.eth.get_block("latest"))["timestamp"])
    epoch = head // 60 + 5
    for rt in ledger.regions.values():
        await rt.sequencer.open(epoch)
    parts = {}
    for r, (sat, buyer) in parties.items():
        start, end = ledger.regions[r].sequencer.window(epoch)
        parts[r] = Part(
            sat.offer(0, 0, 4, start, end, 1), buyer.bid(0, 0, 16, 1, start, end, 10**15), 0, 10**14
        )
    committed = CrossRegionLease(ledger, parts, head + 100)
    await committed.prepare()
    await committed.vote(1)
    await committed.vote(2)
    await committed.finish()
    ledger.regions[2].sequencer.committed_parts.clear()  # region 2 never settles its part
    await ledger.settle_all()
    # a checkpoint with a valid quorum but a made-up lease-state root
    rt = ledger.regions[1]
    block = await rt.backend.web3.eth.get_block("latest")
    digest = ledger.root.checkpoint_digest(1, block["number"], bytes(block["hash"]), EMPTY_ROOT)
    await ledger.root.post_checkpoint(
        1,
        block["number"],
        bytes(block["hash"]),
        EMPTY_ROOT,
        quorum_sign(digest, [v.key for v in rt.validators[:2]]),
    )
    await ledger.close()
    result = await run_audit(tmp_path / "run", index=None)
    lines = [v.line() for v in result.violations]
    assert any(
        v.check == "cross" and "not active in regions [2]" in v.detail for v in result.violations
    ), lines
    assert any(
        v.check == "checkpoint" and "lease-state root does not match" in v.detail
        for v in result.violations
    ), lines
    assert len(result.violations) == 2, lines


# -- the report in a real browser -------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_in_headless_chromium(run: Path):
    report = run / "report.html"
    assert cli(str(run), "--report", str(report)).returncode == 0
    html = report.read_text()
    offline = html.replace("http://www.w3.org/2000/svg", "")  # a namespace, not a fetch
    assert "http://" not in offline and "https://" not in offline and "src=" not in offline
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is part of the test set-up (make test installs it)"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={run / 'chromium-profile'}",
    ]
    summary = json.loads((run / "summary.json").read_text())
    with Browser(chromium, flags) as page:
        page.open(report, 1300, 1600)
        page.wait_for("document.body && document.body.dataset.charts !== '0'")
        body = page.eval("({...document.body.dataset})")
        assert body["errors"] == "0" and int(body["charts"]) >= 2 * 4 + 5, body
        # every chart has both axes: ticks, tick labels and a title with its unit
        axes = page.eval(
            "[...document.querySelectorAll('svg.chart')].map(s => ({"
            "labels: [...s.querySelectorAll('.axis-label')].map(t => t.textContent),"
            "ticks: s.querySelectorAll('.tick-label').length}))"
        )
        assert len(axes) == int(body["charts"])
        assert all(len(a["labels"]) == 2 and all(a["labels"]) and a["ticks"] >= 4 for a in axes)
        labels = {label for a in axes for label in a["labels"]}
        for unit in ("3600 s each", "channel (index)", "per unit)", "(%)", "(s)", "(J)"):
            assert any(unit in label for label in labels), (unit, labels)
        assert page.eval("document.querySelectorAll('rect.lease').length") > 0
        # the lease table: everything, then what the search box and the filters leave
        rows = "document.querySelectorAll('#leases tbody tr').length"
        assert int(body["leases"]) == page.eval(rows) == summary["leases"]
        first = page.eval("document.querySelector('#leases tbody tr').dataset.lease")
        page.type_into("#lease-q", first)
        with sqlite3.connect(run / "audit.sqlite") as db:  # a lease id is one per region
            (same_id,) = db.execute("SELECT count(*) FROM leases WHERE lease_id = ?", (first,))
        assert page.eval("document.body.dataset.leases") == str(same_id[0]) == str(page.eval(rows))
        assert same_id[0] < summary["leases"]
        page.eval("document.getElementById('lease-q').value = ''")
        seller = page.eval("document.querySelector('#leases tbody td:nth-child(5)').title")
        page.type_into("#lease-q", seller)
        by_seller = page.eval(rows)
        assert 0 < by_seller < summary["leases"]
        assert page.eval("document.getElementById('lease-count').textContent").startswith(
            f"{by_seller} of {summary['leases']} leases"
        )
        page.eval(
            "{ const s = document.getElementById('lease-state'); s.value = 'defaulted';"
            "s.dispatchEvent(new Event('change')); }"
        )
        assert page.eval(rows) < by_seller
        page.eval("document.getElementById('lease-q').value = ''")
        page.type_into("#lease-q", " ")  # an input event: the box is empty again
        assert page.eval(rows) == summary["lease_states"].get("defaulted", 0)
        page.eval("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "audit-report.png"
        page.screenshot(shot)
    assert shot.exists() and shot.stat().st_size > 10_000


@pytest.mark.anvil
@pytest.mark.slow
async def test_audit_of_a_live_testnet_by_manifest(tmp_path: Path):
    from ledger.chain import testnet as tn

    nodes = tn.testnet_up(3, tmp_path / "tn")  # root, region-1, region-2, region-3
    try:
        (tmp_path / "small.toml").write_text(SMALL)
        manifest = tmp_path / "tn" / "testnet.json"
        summary = await Simulation(
            load_scenario(tmp_path / "small.toml"),
            tmp_path / "run",
            chains=RpcChains(manifest),
        ).run()
        out = await asyncio.to_thread(cli, "--manifest", str(manifest), "--json")
        verdict = json.loads(out.stdout)
        assert out.returncode == 0, out.stdout
        assert verdict["ok"] and verdict["leases"] == summary["leases"] > 0
        run = tmp_path / "run"
        by_dir = await asyncio.to_thread(cli, str(run))  # an rpc run dir
        assert by_dir.returncode == 0, by_dir.stdout  # follows its recorded manifest
        assert (run / "audit.sqlite").exists()
        chains = RpcChains(manifest)  # the nodes only grow: the next audit extends the index
        for name in chains.nodes:
            backend = await chains.open(name)
            await backend.mine()
            await backend.close()
        grown = await asyncio.to_thread(cli, str(run))
        assert grown.returncode == 0, grown.stdout
        # its training metrics are checked against the root's confirmed hashes
        lines = (run / "rounds.jsonl").read_text().splitlines()
        lines[1] = lines[1].replace('"loss": ', '"loss": 1')
        (run / "rounds.jsonl").write_text("\n".join(lines) + "\n")
        edited = await asyncio.to_thread(cli, str(run))
        assert edited.returncode == 1, edited.stdout
        assert "[metrics] root" in edited.stdout and "round 1 of job" in edited.stdout
        await _code_swapped_on_a_node_is_found(manifest, run)
    finally:
        for node in nodes:
            tn.stop_node(node)


async def _code_swapped_on_a_node_is_found(manifest: Path, run: Path) -> None:
    """A market whose code a node swapped (anvil_setCode: here one letter of a revert
    message, so everything else still reads the same) fails the ``code`` check; once
    the node is reverted to its snapshot, the audit passes again."""
    from ledger.chain import load_artifact

    market = json.loads((run / "ledger.json").read_text())["regions"][0]["address"]
    code = load_artifact("RegionMarket").bytecode_runtime
    at = code.index(b"only the buyer relinquishes")
    swapped = code[:at] + b"O" + code[at + 1 :]
    node = await RpcChains(manifest).open("region-1")
    try:
        provider = node.web3.provider
        snapshot = (await provider.make_request("evm_snapshot", []))["result"]
        await provider.make_request("anvil_setCode", [market, "0x" + swapped.hex()])
        out = await asyncio.to_thread(cli, "--manifest", str(manifest))
        assert out.returncode == 1, out.stdout
        lines = [line for line in out.stdout.splitlines() if "[code]" in line]
        assert len(lines) == 1 and "region-1" in lines[0] and market in lines[0], out.stdout
        await provider.make_request("evm_revert", [snapshot])
        again = await asyncio.to_thread(cli, "--manifest", str(manifest))
        assert again.returncode == 0, again.stdout
        # storage and balance rewritten by the node: no transaction did it, the head says so
        slot = _storage_slot("total_free")
        for method, args, check in (
            ("anvil_setStorageAt", [market, hex(slot), "0x" + "00" * 31 + "01"], "[state]"),
            ("anvil_setBalance", [market, hex(10**18)], "[escrow]"),
        ):
            snapshot = (await provider.make_request("evm_snapshot", []))["result"]
            await provider.make_request(method, args)
            out = await asyncio.to_thread(cli, "--manifest", str(manifest))
            assert out.returncode == 1 and check in out.stdout, (method, out.stdout)
            assert "region-1" in out.stdout
            await provider.make_request("evm_revert", [snapshot])
        assert (await asyncio.to_thread(cli, "--manifest", str(manifest))).returncode == 0
    finally:
        await node.close()


def _storage_slot(name: str) -> int:
    """Where vyper keeps RegionMarket's variable ``name`` (its storage layout)."""
    import vyper

    source = (Path(__file__).parents[2] / "contracts" / "RegionMarket.vy").read_text()
    layout = vyper.compile_code(source, output_formats=["layout"])["layout"]
    return int(layout["storage_layout"][name]["slot"])


async def test_a_run_whose_chains_live_elsewhere_is_found_by_its_ledger_record(tmp_path: Path):
    chains = EmbeddedChains(tmp_path / "elsewhere", genesis_timestamp=1_900_000_000)
    ledger = await TieredLedger.create(tmp_path / "run", [RegionConfig(1)], chains=chains)
    await ledger.close()
    assert not (tmp_path / "run" / "chains").exists()
    result = await run_audit(tmp_path / "run")
    assert result.ok, [v.line() for v in result.violations]
    assert sorted(c.name for c in result.chains) == ["region-1", "root"]
