"""The epoch protocol's throughput: ``settle_leases_per_s`` and ``regions_scaling``.

One measured epoch of a region is the whole protocol: every buyer signs its
bid (EIP-712), the sequencer checks and admits it, the book is frozen and
hashed, each of the 3 validators re-runs the mechanism and signs, and one
settlement transaction records all leases. Setting up the participants
(funding, registering, depositing) is not timed.

``regions_scaling``: the live runtime, a :class:`~ledger.tiered.TieredLedger` on
rpc (``specledger testnet``: a root and N region anvils) whose regions settle
in processes of their own (:mod:`ledger.region.worker`). Each region runs its
own epoch cycle (open, orders signed and admitted in this process, settle in
the region's process), all regions side by side; the figure is all leases
settled divided by the wall time of the timed epochs.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from ..bindings import RegionMarket
from ..chain import ChainBackend, LedgerClient, RpcChains, dev_keys
from ..config import RegionConfig
from ..records import Role
from ..region import RegionSequencer, Trader, Validator, settle_epoch
from ..tiered import TieredLedger, derive_key

__all__ = ["measure_protocol", "regions_scaling"]

CHANNELS = 128


async def _setup(
    backend: ChainBackend, buyers: int, region: int = 1
) -> tuple[RegionSequencer, list[Validator], list[Trader], Trader, int]:
    config = RegionConfig(region, mechanism="second_price", num_channels=CHANNELS)
    validators = [Validator(derive_key(region, f"bench-validator-{i}")) for i in range(3)]
    admin = LedgerClient(backend, dev_keys()[0])
    market = await RegionMarket.deploy(admin, config, [v.address for v in validators])
    seller = Trader(derive_key(region, "bench-seller"), market, admin)
    await seller.join(Role.TERRESTRIAL, bond_wei=10**18)
    traders = []
    for i in range(buyers):
        t = Trader(derive_key(region, f"bench-buyer-{i}"), market, admin)
        await t.join(Role.COORDINATOR, deposit_wei=10**17)
        traders.append(t)
    sequencer = RegionSequencer(market, config)
    await sequencer.sync()  # index the set-up blocks now, not inside a timed epoch
    return sequencer, validators, traders, seller, config.threshold


async def _epochs(
    sequencer: RegionSequencer,
    validators: list[Validator],
    buyers: list[Trader],
    seller: Trader,
    threshold: int,
    epochs: int,
    first_epoch: int,
) -> dict[str, float]:
    phases = dict.fromkeys(("sign_s", "admit_s", "attest_and_settle_s"), 0.0)
    leases = 0
    for e in range(first_epoch, first_epoch + epochs):
        await sequencer.open(e)
        start, end = sequencer.window(e)
        t0 = time.perf_counter()
        offer = seller.offer(0, 0, CHANNELS, start, end, 10**9)
        bids = [b.bid(0, 0, CHANNELS, 1, start, end, 10**14) for b in buyers]
        t1 = time.perf_counter()
        await sequencer.submit_offer(offer)
        for bid in bids:
            await sequencer.submit_bid(bid)
        t2 = time.perf_counter()
        outcome = await settle_epoch(sequencer.market, sequencer.close(), validators, threshold)
        t3 = time.perf_counter()
        assert outcome.settled, outcome.reason
        sequencer.apply(outcome.leases)
        leases += len(outcome.leases)
        phases["sign_s"] += t1 - t0
        phases["admit_s"] += t2 - t1
        phases["attest_and_settle_s"] += t3 - t2
    return {"leases": leases, **phases}


async def measure_protocol(
    backend: ChainBackend, buyers: int = 100, epochs: int = 3
) -> dict[str, Any]:
    """Leases per second through the whole epoch protocol for one region."""
    sequencer, validators, traders, seller, threshold = await _setup(backend, buyers)
    head = int((await backend.web3.eth.get_block("latest"))["timestamp"])
    first = head // 60 + 10
    await _epochs(sequencer, validators, traders[:5], seller, threshold, 1, first)  # warm-up
    # the warm-up used one nonce per buyer for 5 buyers; later bids carry fresh nonces
    started = time.perf_counter()
    result = await _epochs(sequencer, validators, traders, seller, threshold, epochs, first + 1)
    elapsed = time.perf_counter() - started
    per_lease_ms = {
        k[:-2] + "_ms": round(1000 * v / result["leases"], 3)
        for k, v in result.items()
        if k.endswith("_s")
    }
    return {
        "settle_leases_per_s": round(result["leases"] / elapsed, 1),
        "settle_epochs": epochs,
        "settle_leases_per_epoch": buyers,
        "settle_time_per_lease": per_lease_ms,
    }


async def _runtime_scaling(n: int, buyers: int, epochs: int, directory: Path) -> float:
    from ..chain.testnet import stop_node, testnet_up

    nodes = testnet_up(n, directory / "testnet")
    try:
        configs = [
            RegionConfig(r, f"r{r}", "second_price", num_channels=CHANNELS) for r in range(1, n + 1)
        ]
        ledger = await TieredLedger.create(
            directory / "run",
            configs,
            chains=RpcChains(directory / "testnet" / "testnet.json"),
            region_processes=True,
        )
        try:
            parties = {}
            for r, rt in ledger.regions.items():
                seller = Trader(derive_key(r, "bench-seller"), rt.market, rt.client)
                await seller.join(Role.TERRESTRIAL, bond_wei=10**18)
                traders = []
                for i in range(buyers):
                    t = Trader(derive_key(r, f"bench-buyer-{i}"), rt.market, rt.client)
                    await t.join(Role.COORDINATOR, deposit_wei=10**17)
                    traders.append(t)
                parties[r] = (seller, traders)
                await rt.sequencer.sync()  # index the set-up blocks now, not in an epoch
            head = int((await ledger.root_backend.web3.eth.get_block("latest"))["timestamp"])
            first = head // 60 + 10

            async def region(r: int, epochs: range, count: int) -> int:
                """One region's own epoch cycle; regions run theirs side by side, so this
                process admits one region's orders while another region's process settles."""
                rt, (seller, traders) = ledger.regions[r], parties[r]
                leases = 0
                for e in epochs:
                    seq = rt.sequencer
                    await seq.open(e)
                    start, end = seq.window(e)
                    await seq.submit_offer(seller.offer(0, 0, CHANNELS, start, end, 10**9))
                    for t in traders[:count]:
                        await seq.submit_bid(t.bid(0, 0, CHANNELS, 1, start, end, 10**14))
                    outcome = await ledger.settle_region(r, timeout_s=300)
                    assert outcome.settled, outcome.reason
                    leases += len(outcome.leases)
                return leases

            async def all_regions(epochs: range, count: int) -> int:
                return sum(await asyncio.gather(*(region(r, epochs, count) for r in parties)))

            await all_regions(range(first, first + 1), 5)  # warm-up: starts the processes
            started = time.perf_counter()
            leases = await all_regions(range(first + 1, first + 1 + epochs), buyers)
            return leases / (time.perf_counter() - started)
        finally:
            await ledger.close()
    finally:
        for node in nodes:
            stop_node(node)


def regions_scaling(
    counts: tuple[int, ...] = (1, 2, 4), buyers: int = 100, epochs: int = 6
) -> dict[str, float]:
    """Aggregate settled leases per second of the live runtime (TieredLedger on rpc, each
    region settling in its own process) with 1, 2, 4 regions."""
    out = {}
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="bench-regions-") as tmp:
            out[str(n)] = round(asyncio.run(_runtime_scaling(n, buyers, epochs, Path(tmp))), 1)
    return out
