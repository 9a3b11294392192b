"""The epoch protocol's throughput: ``settle_leases_per_s`` and ``regions_scaling``.

One measured epoch of a region is the whole protocol: every buyer signs its
bid (EIP-712), the sequencer checks and admits it, the book is frozen and
hashed, each of the 3 validators re-runs the mechanism and signs, and one
settlement transaction records all leases. Setting up the participants
(funding, registering, depositing) is not timed.

``regions_scaling``: N regions, each in its own OS process with its own anvil
node, start their timed epochs together (a barrier); the figure is all leases
settled divided by the wall time from the common start to the last finish.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from typing import Any

from .backends import ChainBackend, dev_keys, open_backend
from .client import LedgerClient
from .market import RegionMarket, Role
from .region import RegionSequencer, Validator, settle_epoch
from .tiered import RegionSpec, derive_key
from .trader import Trader

__all__ = ["measure_protocol", "regions_scaling"]

CHANNELS = 128


async def _setup(
    backend: ChainBackend, buyers: int, region: int = 1
) -> tuple[RegionSequencer, list[Validator], list[Trader], Trader, int]:
    spec = RegionSpec(region, mechanism="second_price", num_channels=CHANNELS)
    validators = [Validator(derive_key(region, f"bench-validator-{i}")) for i in range(3)]
    config = spec.market_config([v.address for v in validators])
    admin = LedgerClient(backend, dev_keys()[0])
    market = await RegionMarket.deploy(admin, config)
    seller = Trader(derive_key(region, "bench-seller"), market, admin)
    await seller.join(Role.TERRESTRIAL, bond_wei=10**18)
    traders = []
    for i in range(buyers):
        t = Trader(derive_key(region, f"bench-buyer-{i}"), market, admin)
        await t.join(Role.COORDINATOR, deposit_wei=10**17)
        traders.append(t)
    sequencer = RegionSequencer(market, config)
    await sequencer.sync()  # index the set-up blocks now, not inside a timed epoch
    return sequencer, validators, traders, seller, spec.threshold


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
        sequencer.apply(outcome)
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


def _worker(url: str, region: int, buyers: int, epochs: int, barrier: Any, out: Any) -> None:
    async def run() -> tuple[int, float, float]:
        backend = await open_backend("rpc", url=url)
        sequencer, validators, traders, seller, threshold = await _setup(backend, buyers, region)
        head = int((await backend.web3.eth.get_block("latest"))["timestamp"])
        barrier.wait()
        started = time.time()
        result = await _epochs(
            sequencer, validators, traders, seller, threshold, epochs, head // 60 + 10
        )
        finished = time.time()
        await backend.close()
        return int(result["leases"]), started, finished

    out.put(asyncio.run(run()))


def regions_scaling(
    counts: tuple[int, ...] = (1, 2, 4), buyers: int = 100, epochs: int = 3
) -> dict[str, float]:
    """Aggregate settled leases per second with 1, 2, 4 regions, one process each (rpc)."""
    from .testnet import start_node, stop_node

    ctx = mp.get_context("spawn")
    scaling: dict[str, float] = {}
    for n in counts:
        nodes = [start_node(f"scale-{i}", 33_000 + i) for i in range(n)]
        try:
            barrier, out = ctx.Barrier(n), ctx.Queue()
            procs = [
                ctx.Process(target=_worker, args=(node.url, i + 1, buyers, epochs, barrier, out))
                for i, node in enumerate(nodes)
            ]
            for p in procs:
                p.start()
            results = [out.get(timeout=600) for _ in procs]
            for p in procs:
                p.join()
                if p.exitcode != 0:
                    raise RuntimeError(f"a region worker failed (exit {p.exitcode})")
        finally:
            for node in nodes:
                stop_node(node)
        leases = sum(r[0] for r in results)
        wall = max(r[2] for r in results) - min(r[1] for r in results)
        scaling[str(n)] = round(leases / wall, 1)
    return scaling
