"""``specledger bench regions``: the live runtime's throughput with 1, 2 and 4 regions.

The runtime is a :class:`~ledger.tiered.TieredLedger` on rpc (``specledger testnet``:
a root and N region anvils of our own, started and stopped here) whose regions settle
in processes of their own (:mod:`ledger.region.worker`). Each region runs its own
epoch cycle (open, orders signed and admitted in this process, settle in the
region's process), all regions side by side. Setting up the parties and one
warm-up epoch (which starts the region processes) are not timed.

Per region count, one repeat is ``epochs`` epochs of every region, and there are at
least MIN_REPEATS repeats on the same ledger:

- ``leases_per_s``: all leases the repeat settled divided by its wall time, as a
  spread (median, min, max), and ``per_cpu_s``: the same leases per CPU second of
  every process that worked for them (this one, the region processes, the anvils);
- ``wall_s`` / ``cpu_s``: each repeat's seconds, and ``cpu_s_by_process`` that CPU
  time split into ``bench`` (this process: signing, admission), ``region_workers``
  (mechanism, committee, settlement) and ``anvil`` (the nodes, the root's included;
  other processes' CPU is read from ``/proc`` in clock ticks, 10 ms on most systems).

The figures flatten past ``cpu_count``: the regions share the machine's cores.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..chain import RpcChains
from ..config import RegionConfig
from ..errors import LedgerError
from ..records import Role
from ..region import Trader
from ..tiered import TieredLedger, derive_key
from .settle import CHANNELS
from .stats import MIN_REPEATS, Timing, spread

__all__ = ["bench_regions"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_of(pids: Iterable[int]) -> float:
    """User plus system CPU seconds the processes ``pids`` have used (0 for one gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    return total


async def _runtime(
    n: int, buyers: int, epochs: int, repeats: int, directory: Path
) -> dict[str, Any]:
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
                    if not outcome.settled:
                        raise LedgerError(f"bench: region {r} epoch {e}: {outcome.reason}")
                    leases += len(outcome.leases)
                return leases

            async def all_regions(epochs: range, count: int) -> int:
                return sum(await asyncio.gather(*(region(r, epochs, count) for r in parties)))

            await all_regions(range(first, first + 1), 5)  # warm-up: starts the processes
            workers = [await (await ledger.worker(r)).pid() for r in parties]
            anvils = [node.pid for node in nodes]
            expected = n * epochs * buyers
            timing = Timing()
            by_process: dict[str, list[float]] = {"bench": [], "region_workers": [], "anvil": []}
            for k in range(max(repeats, MIN_REPEATS)):
                e0 = first + 1 + k * epochs
                cpu = (time.process_time(), _cpu_of(workers), _cpu_of(anvils))
                wall = time.perf_counter()
                leases = await all_regions(range(e0, e0 + epochs), buyers)
                wall = time.perf_counter() - wall
                used = (
                    time.process_time() - cpu[0],
                    _cpu_of(workers) - cpu[1],
                    _cpu_of(anvils) - cpu[2],
                )
                if leases != expected:  # every bid fits: a shortfall means the figure counts less
                    raise LedgerError(f"bench: a repeat settled {leases} of {expected} bids")
                timing.add(wall, sum(used))
                for name, seconds in zip(by_process, used, strict=True):
                    by_process[name].append(seconds)
            return {
                "leases_per_s": timing.rate(expected),
                **timing.seconds(),
                "cpu_s_by_process": {k: spread(v) for k, v in by_process.items()},
            }
        finally:
            await ledger.close()
    finally:
        for node in nodes:
            stop_node(node)


def bench_regions(
    counts: tuple[int, ...] = (1, 2, 4),
    buyers: int = 100,
    epochs: int = 2,
    repeats: int = MIN_REPEATS,
) -> dict[str, Any]:
    """The live runtime (TieredLedger on rpc, each region settling in its own process)
    with each number of regions in ``counts``, on anvils started for it."""
    out: dict[str, Any] = {
        "backend": "rpc",
        "cpu_count": os.cpu_count(),
        "buyers": buyers,
        "epochs_per_repeat": epochs,
        "regions": {},
    }
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="bench-regions-") as tmp:
            out["regions"][str(n)] = asyncio.run(_runtime(n, buyers, epochs, repeats, Path(tmp)))
    return out
