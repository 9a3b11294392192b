"""The audit's index: bound to the heads it read, extended while the chains only grow,
an alarm that stays when something indexed changed, cleared only by ``--reindex``."""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
from pathlib import Path

import pytest

from ledger.audit import AuditResult, ChainRow, LeaseRow, run_audit
from ledger.audit.index import keep_index, read_index
from ledger.chain import EmbeddedChains
from ledger.config import RegionConfig
from ledger.records import Role
from ledger.region import Trader
from ledger.tiered import TieredLedger, derive_key

from .test_audit import cli

GENESIS = 1_900_000_000


@pytest.fixture
async def run(tmp_path: Path) -> Path:
    """A one-region ledger with a seller and a buyer joined (deposits and a bond)."""
    ledger = await TieredLedger.create(
        tmp_path / "run",
        [RegionConfig(1)],
        seed=2,
        chains=EmbeddedChains(tmp_path / "run" / "chains", genesis_timestamp=GENESIS),
    )
    rt = ledger.regions[1]
    await Trader(derive_key(4, "sat"), rt.market, rt.client).join(Role.SATELLITE, bond_wei=10**18)
    await Trader(derive_key(4, "buyer"), rt.market, rt.client).join(
        Role.COORDINATOR, deposit_wei=10**18
    )
    await ledger.close()
    return tmp_path / "run"


async def mine(run: Path, name: str, timestamp: int | None = None) -> None:
    """One empty block on chain ``name`` of the run."""
    backend = await EmbeddedChains(run / "chains").open(name)
    try:
        await backend.mine(timestamp)
    finally:
        await backend.close()


def heads(run: Path) -> dict[str, int]:
    with sqlite3.connect(run / "audit.sqlite") as db:
        return dict(db.execute("SELECT name, head_block FROM chains").fetchall())


def lines(result: AuditResult) -> list[str]:
    return [v.line() for v in result.violations]


async def test_two_audits_of_chains_that_only_grew_both_pass(run: Path):
    first = await run_audit(run)
    assert first.ok and not first.notes, lines(first)
    before = heads(run)
    await mine(run, "root")
    await mine(run, "region-1")
    second = await run_audit(run)  # the index is extended, quietly
    assert second.ok and not second.notes, lines(second)
    assert heads(run) == {name: n + 1 for name, n in before.items()}
    # and with new rows: a deposit after the indexed head
    ledger = await TieredLedger.open(run)
    rt = ledger.regions[1]
    await Trader(derive_key(4, "buyer-2"), rt.market, rt.client).join(
        Role.COORDINATOR, deposit_wei=10**17
    )
    await ledger.close()
    third = await run_audit(run)
    assert third.ok and not third.notes, lines(third)
    assert len(third.payments) > len(second.payments)


async def test_an_edited_index_row_raises_an_alarm_that_stays_until_reindex(run: Path):
    assert (await run_audit(run)).ok
    with sqlite3.connect(run / "audit.sqlite") as db:
        db.execute("UPDATE payments SET amount_wei = '1' WHERE rowid = 1")
    for _ in range(2):  # the next audit does not clear it
        result = await run_audit(run)
        found = lines(result)
        assert not result.ok
        assert any("audit.sqlite was edited after it was written" in x for x in found), found
        differs = [x for x in found if "holds a payments row that differs" in x]
        assert len(differs) == 1 and "amount_wei '1' (indexed)" in differs[0], found
        assert differs[0].startswith("[integrity] region-1, block ")
        assert all("--reindex" in x for x in found)
    _, stored = read_index(run / "audit.sqlite")
    assert len(stored["alarms"]) == 2
    out = cli(str(run), "--reindex")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "audit.sqlite rebuilt from the chains (--reindex): 2 alarm(s) cleared" in out.stdout
    assert (await run_audit(run)).ok
    out = cli(str(run), "--reindex")
    assert out.returncode == 0 and "no alarm was raised" in out.stdout


async def test_a_rewritten_head_raises_an_alarm(run: Path, tmp_path: Path):
    assert (await run_audit(run)).ok
    saved = tmp_path / "saved"
    shutil.copytree(run / "chains", saved)
    await mine(run, "root")
    assert (await run_audit(run)).ok
    indexed = heads(run)["root"]
    # the root's history replaced: back to before that block, then another block there
    shutil.rmtree(run / "chains")
    shutil.copytree(saved, run / "chains")
    await mine(run, "root", GENESIS + 10**6)
    result = await run_audit(run)
    found = lines(result)
    assert any(
        x.startswith(f"[integrity] root, block {indexed}: audit.sqlite indexed block {indexed}")
        and "it has hash" in x
        for x in found
    ), found
    await mine(run, "root")
    assert not (await run_audit(run)).ok  # the alarm stays: the chain is not what was indexed
    assert (await run_audit(run, reindex=True)).ok
    assert (await run_audit(run)).ok


def _lease(state: str = "active", state_block: int = 3) -> LeaseRow:
    return LeaseRow(
        1, "0x01", 0, 0, "0xs", "0xb", 0, 1, 2, 0, 60, "10", "0xo", "0xd", 3, "0xt3", state,
        state_block, "0xt3" if state_block == 3 else "0xt9",
    )  # fmt: skip


def _result(head: int, lease: LeaseRow) -> AuditResult:
    hashes = {n: f"0x{n:02x}" for n in range(head + 1)}
    return AuditResult(
        chains=[
            ChainRow("root", 1, 0, "0x00"),
            ChainRow("region-1", 2, head, hashes[head]),
        ],
        leases=[lease],
        block_hashes={"root": {0: "0x00"}, "region-1": hashes},
    )


def test_a_lease_that_ended_after_the_indexed_head_is_no_alarm(tmp_path: Path):
    index = tmp_path / "audit.sqlite"
    keep_index(index, _result(5, _lease()))
    ended = _result(9, _lease("completed", 9))  # completed at block 9, after head 5
    keep_index(index, ended)
    assert ended.ok, lines(ended)
    assert read_index(index)[1]["leases"][0][16] == "completed"


def test_a_lease_whose_indexed_state_changed_is_an_alarm(tmp_path: Path):
    index = tmp_path / "audit.sqlite"
    keep_index(index, _result(5, _lease("completed", 4)))
    rewritten = _result(9, _lease("defaulted", 4))
    keep_index(index, rewritten)
    assert [v.check for v in rewritten.violations] == ["integrity"]
    assert "state 'completed' (indexed) vs 'defaulted' (chains)" in lines(rewritten)[0]
    again = _result(9, _lease("defaulted", 4))
    keep_index(index, again)
    assert lines(again) == lines(rewritten)  # kept, not raised again


def test_a_missing_region_chain_leaves_the_index_as_it_was(tmp_path: Path):
    index = tmp_path / "audit.sqlite"
    keep_index(index, _result(5, _lease()))
    before = read_index(index)
    partial = dataclasses.replace(_result(5, _lease()), chains=[ChainRow("root", 1, 0, "0x00")])
    keep_index(index, partial)
    assert partial.ok and partial.notes == ["audit.sqlite left as it was: region-1 not read"]
    assert read_index(index) == before


def test_an_unreadable_index_is_an_alarm(tmp_path: Path):
    index = tmp_path / "audit.sqlite"
    index.write_bytes(b"not a database at all" * 100)
    result = _result(5, _lease())
    keep_index(index, result)
    assert "audit.sqlite cannot be read as an index" in lines(result)[0]
    later = _result(6, _lease())
    keep_index(index, later)
    assert not later.ok  # it stays
