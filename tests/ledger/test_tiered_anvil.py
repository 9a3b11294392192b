"""The tiered ledger on the rpc backend: every chain a real anvil process."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.chain import RpcChains
from ledger.chain import testnet as tn
from ledger.config import RegionConfig
from ledger.tiered import TieredLedger

from .test_tiered import open_epoch, traders

pytestmark = pytest.mark.anvil


@pytest.fixture
def testnet(tmp_path: Path):
    nodes = tn.testnet_up([0, 1], tmp_path / "tn")
    yield tmp_path / "tn" / "testnet.json", {n.name: n for n in nodes}
    for node in nodes:  # stop (and reap) our own child processes
        tn.stop_node(node)


async def test_stopping_one_region_node_does_not_stop_the_other(tmp_path: Path, testnet):
    manifest, nodes = testnet
    specs = [RegionConfig(0, "west"), RegionConfig(1, "east")]
    ledger = await TieredLedger.create(tmp_path / "run", specs, chains=RpcChains(manifest))
    try:
        parties = {r: await traders(ledger, r) for r in (0, 1)}
        epoch = await open_epoch(ledger)
        for r, (seller, (buyer, _)) in parties.items():
            seq = ledger.regions[r].sequencer
            start, end = seq.window(epoch)
            await seq.submit_offer(seller.offer(0, 0, 4, start, end, 10))
            await seq.submit_bid(buyer.bid(0, 0, 16, 1, start, end, 10**15))
        assert tn.stop_node(nodes["region-1"])  # the east region's node process is gone
        for rt in ledger.regions.values():
            rt.client.retries, rt.client.timeout_s = 2, 5
        outcomes = await ledger.settle_all(timeout_s=30)
        assert outcomes[0].settled and len(outcomes[0].leases) == 1
        assert not outcomes[1].settled and "NodeUnavailable" in outcomes[1].reason
    finally:
        await ledger.close()


async def test_each_region_settles_in_its_own_process(tmp_path: Path, testnet):
    import os

    manifest, _ = testnet
    specs = [RegionConfig(0, "west"), RegionConfig(1, "east", "proportional_fair")]
    ledger = await TieredLedger.create(tmp_path / "run", specs, chains=RpcChains(manifest))
    try:
        assert ledger.region_processes  # the default on rpc
        parties = {r: await traders(ledger, r) for r in (0, 1)}
        first = await open_epoch(ledger)
        for epoch in (first, first + 1):  # the same worker serves later epochs
            for rt in ledger.regions.values():
                await rt.sequencer.open(epoch)
            for r, (seller, (buyer, _)) in parties.items():
                seq = ledger.regions[r].sequencer
                start, end = seq.window(epoch)
                await seq.submit_offer(seller.offer(0, 0, 4, start, end, 10))
                await seq.submit_bid(buyer.bid(0, 0, 16, 1, start, end, 10**15))
            outcomes = await ledger.settle_all()
            assert all(o.settled and len(o.leases) == 1 for o in outcomes.values()), outcomes
            for r in (0, 1):  # the main process follows what the workers settled
                await ledger.regions[r].sequencer.sync()
                assert outcomes[r].leases[0].lease_id in ledger.regions[r].sequencer.records
        pids = {r: await ledger.workers[r].pid() for r in (0, 1)}
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    finally:
        await ledger.close()
    assert ledger.workers == {}  # closed with the ledger
