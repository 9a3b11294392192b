"""A collaborative training pool bought on the ledger: plan -> lease request -> bids -> leases."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.coordinator import Coordinator
from agents.errors import AgentError
from agents.roles import DEVICE
from agents.strategies import Truthful
from ledger.chain import EmbeddedChains
from ledger.config import RegionConfig
from ledger.records import Kind, Role
from ledger.region import RegionSequencer, Trader
from ledger.tiered import TieredLedger, derive_key
from training.parallel import DeviceProfile, TransformerShape, lease_request, plan

GENESIS = 1_900_000_000
ETH = 10**18
GIB = 2**30


def pool(n: int) -> list[DeviceProfile]:
    return [DeviceProfile(f"dev{i}", 2e12, 12 * GIB, 25e6, 1e-3, 5.0, 30.0, 2.0) for i in range(n)]


# 1.3 B parameters: no device holds it, so the plan splits it over several devices
BIG = TransformerShape(
    layers=24, hidden=2048, heads=16, ffn=8192, vocab=32000, seq_len=512, batch=8, microbatches=8
)


@pytest.mark.parametrize("mechanism", ["second_price", "proportional_fair", "bundle"])
async def test_the_plan_is_bought_and_settled_on_the_ledger(tmp_path: Path, mechanism: str):
    chosen = plan(BIG, pool(6), "energy")
    lease = lease_request(chosen, 100, channel_width_hz=10e6, spectral_efficiency_bps_per_hz=5.0)
    assert lease.devices >= 2 and lease.channels_per_device == 4  # 200 Mbit/s, 50 per channel
    spec = RegionConfig(1, "edge", mechanism, num_channels=16)
    chains = EmbeddedChains(tmp_path / "run" / "chains", genesis_timestamp=GENESIS)
    tl = await TieredLedger.create(tmp_path / "run", [spec], seed=3, chains=chains)
    try:
        rt = tl.regions[1]
        devices = []
        for i in range(6):  # the pool's devices offer their idle compute
            t = Trader(derive_key(5, f"device-{i}"), rt.market, rt.client)
            await t.join(Role.EDGE_DEVICE, bond_wei=ETH // 10)
            devices.append(t)
        operator = Trader(derive_key(5, "operator"), rt.market, rt.client)
        await operator.join(Role.TERRESTRIAL, bond_wei=ETH)
        buyer = Trader(derive_key(5, "coordinator"), rt.market, rt.client)
        await buyer.join(Role.COORDINATOR, deposit_wei=ETH)
        coordinator = Coordinator(buyer.key, None, Truthful(), traders={1: buyer})
        head = int((await tl.root_backend.web3.eth.get_block("latest"))["timestamp"])
        epoch = head // 60 + 5
        await rt.sequencer.open(epoch)
        window = rt.sequencer.window(epoch)
        for t in devices:
            await rt.sequencer.submit_offer(t.offer(Kind.COMPUTE, DEVICE, 1, *window, 10**12))
        await rt.sequencer.submit_offer(operator.offer(Kind.SPECTRUM, 0, 16, *window, 10**12))
        refused: list[str] = []
        admitted = await coordinator.bid_pool(
            rt.sequencer,
            lease,
            epoch,
            device_price_wei=6 * 10**12,
            channel_price_wei=4 * 10**12,
            refused=refused.append,
        )
        assert refused == []
        # each mechanism says how the pool is bid: one bid per channel for the auctions,
        # one run of channels per device for proportional_fair, bundles for bundle
        shape = rt.sequencer.mechanism.bid_shape.value
        per_device = {"unit": 1 + lease.channels_per_device, "run": 2, "bundle": 1}[shape]
        assert admitted == lease.devices * per_device
        outcome = await tl.settle_region(1)
    finally:
        await tl.close()
    assert outcome.settled
    compute = [r for r in outcome.leases if r.kind == Kind.COMPUTE]
    spectrum = [r for r in outcome.leases if r.kind == Kind.SPECTRUM]
    assert len(compute) == lease.devices
    assert len({r.seller for r in compute}) == lease.devices  # distinct pool devices
    assert sum(r.units for r in spectrum) == lease.devices * lease.channels_per_device


def test_a_plan_that_needs_more_channels_than_the_region_has_is_refused():
    chosen = plan(BIG, pool(6), "energy")
    lease = lease_request(chosen, 10, channel_width_hz=1e6, spectral_efficiency_bps_per_hz=1.0)
    spec = RegionConfig(1, "edge", "second_price", num_channels=16)
    sequencer = RegionSequencer.__new__(RegionSequencer)  # only its configuration is read
    sequencer.config = spec
    with pytest.raises(AgentError, match="needs 200 channels per device .* region 1 has 16"):
        asyncio.run(
            Coordinator(b"\1" * 32, None, Truthful()).bid_pool(
                sequencer, lease, 0, device_price_wei=1, channel_price_wei=1, refused=print
            )
        )
