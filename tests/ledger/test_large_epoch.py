"""An epoch of more winners than one settlement transaction holds settles whole."""

from __future__ import annotations

from pathlib import Path

from ledger.audit import run_audit
from ledger.bindings import MAX_LEASES
from ledger.chain import EmbeddedChains
from ledger.config import RegionConfig
from ledger.records import Kind, LeaseState, Role
from ledger.region import Trader
from ledger.tiered import TieredLedger, derive_key

GENESIS = 1_900_000_000
ETH = 10**18


async def test_an_epoch_of_1000_winning_leases_settles_in_parts(tmp_path: Path):
    tl = await TieredLedger.create(
        tmp_path / "run",
        [RegionConfig(1, "north", "second_price")],
        seed=5,
        chains=EmbeddedChains(tmp_path / "run" / "chains", genesis_timestamp=GENESIS),
    )
    try:
        rt = tl.regions[1]
        seller = Trader(derive_key(5, "seller"), rt.market, rt.client)
        await seller.join(Role.EDGE_SERVER, bond_wei=ETH)
        buyer = Trader(derive_key(5, "buyer"), rt.market, rt.client)
        await buyer.join(Role.COORDINATOR, deposit_wei=ETH)
        head = int((await rt.backend.web3.eth.get_block("latest"))["timestamp"])
        epoch = head // 60 + 5
        seq = rt.sequencer
        await seq.open(epoch)
        start, end = seq.window(epoch)
        await seq.submit_offer(seller.offer(Kind.COMPUTE, 0, 1000, start, end, 10**9))
        for _ in range(1000):
            await seq.submit_bid(buyer.bid(Kind.COMPUTE, 0, 0, 1, start, end, 10**13))
        outcome = await tl.settle_region(1, timeout_s=600)
        assert outcome.settled, outcome.reason
        assert len(outcome.leases) == 1000
        assert len(outcome.parts) == -(-1000 // MAX_LEASES) == 8
        assert outcome.tx_hash == outcome.parts[-1]
        assert await rt.market.binding.call("last_epoch") == epoch
        states = {await rt.market.lease_state(r.lease_id) for r in outcome.leases[::97]}
        assert states == {LeaseState.ACTIVE}
        assert await rt.market.escrow_conserved()
        await seq.sync()
        assert sum(1 for r in seq.records.values() if r.epoch == epoch) == 1000
    finally:
        await tl.close()
    verdict = await run_audit(tmp_path / "run")
    assert verdict.ok, verdict.violations[:3]
    assert len(verdict.leases) == verdict.leases_verified == 1000
    assert len(verdict.settlements) == 8
