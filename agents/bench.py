"""``specledger bench market``: the market's speed with 100 and 1,000 agents.

For each size a scenario is generated (4 regions, a few operators and servers,
the rest edge devices, one coordinator) and run on the embedded backend for 3
epochs with one training round. Figures per size:

- ``bids_per_s``: orders (offers and bids) the sequencers admitted per second of
  signing and admission, over the measured epochs;
- ``epoch_s``: wall time of one epoch for all regions (submit, settle every
  region, heartbeats, the round, completions), the mean of the measured epochs;
- ``setup_s``: bringing up the chains and joining every agent (not in epoch_s).

The first epoch is a warm-up and not measured.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from .run import EpochReport, Simulation
from .scenario import load_scenario

__all__ = ["bench_market"]

TEMPLATE = """
seed = 5
epochs = 3
epoch_length_s = 3600
genesis_timestamp = 1893456000
{regions}
[participants]
satellite_operators = 2
terrestrial_operators = 8
edge_servers = 4
edge_devices = {devices}
coordinators = 1

[job]
rounds = 1
devices_per_round = 8
budget_eth = 20
"""


def _scenario(agents: int) -> str:
    regions = "".join(
        f'\n[[regions]]\nid = {i}\nmechanism = "proportional_fair"\nchannels = 64\n'
        for i in range(4)
    )
    return TEMPLATE.format(regions=regions, devices=agents - 15)


async def bench_market(sizes: tuple[int, ...] = (100, 1000)) -> dict[str, Any]:
    results: dict[str, Any] = {"backend": "embedded", "sizes": []}
    for agents in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-market-") as tmp:
            path = Path(tmp) / f"market-{agents}.toml"
            path.write_text(_scenario(agents))
            reports: list[EpochReport] = []
            sim = Simulation(load_scenario(path), Path(tmp) / "run", progress=reports.append)
            summary = await sim.run()
            measured = reports[1:]
            orders = sum(r.orders for r in measured)
            submit_s = sum(r.submit_s for r in measured)
            results["sizes"].append(
                {
                    "agents": summary["agents"],
                    "bids_per_s": round(orders / submit_s, 1),
                    "epoch_s": round(sum(r.wall_s for r in measured) / len(measured), 3),
                    "orders_per_epoch": orders // len(measured),
                    "leases": summary["leases"],
                    "setup_s": round(summary["wall_s"] - sum(r.wall_s for r in reports), 2),
                }
            )
    return results
