"""The tiered ledger on the rpc backend: every chain a real anvil process."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import testnet as tn
from ledger.tiered import RegionSpec, TieredLedger

from .test_tiered import open_epoch, traders

pytestmark = pytest.mark.anvil


@pytest.fixture
def testnet(tmp_path: Path):
    nodes = tn.testnet_up(2, tmp_path / "tn")
    yield tmp_path / "tn" / "testnet.json", {n.name: n for n in nodes}
    for node in nodes:  # stop (and reap) our own child processes
        tn.stop_node(node)


async def test_stopping_one_region_node_does_not_stop_the_other(tmp_path: Path, testnet):
    manifest, nodes = testnet
    specs = [RegionSpec(0, "west"), RegionSpec(1, "east")]
    ledger = await TieredLedger.create(tmp_path / "run", specs, backend="rpc", manifest=manifest)
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
