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

from .errors import AgentError
from .run import EpochReport, Simulation
from .scenario import load_scenario

__all__ = ["bench_audit", "bench_market"]

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


AUDIT_TEMPLATE = """
seed = 9
epochs = {epochs}
epoch_length_s = 3600
genesis_timestamp = 1893456000
checkpoint_every = 5
[[regions]]
id = 1
mechanism = "proportional_fair"
channels = 32
[[regions]]
id = 2
mechanism = "second_price"
channels = 32
[[regions]]
id = 3
mechanism = "double_auction"
channels = 32
[participants]
satellite_operators = 1
terrestrial_operators = 6
edge_servers = 3
edge_devices = 60
[job]
rounds = {epochs}
devices_per_round = 24
budget_eth = 200
[failures]
device_dropout = 0.05
"""


async def bench_audit(min_leases: int = 1000) -> dict[str, Any]:
    """Generate a run with at least ``min_leases`` leases, then time a full audit of it."""
    import time

    from ledger.audit import run_audit

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        epochs = max(2, -(-min_leases // 30))  # about 36 leases per epoch were measured
        path = Path(tmp) / "audit.toml"
        path.write_text(AUDIT_TEMPLATE.format(epochs=epochs))
        summary = await Simulation(load_scenario(path), Path(tmp) / "run").run()
        if summary["leases"] < min_leases:
            raise AgentError(
                f"the generated run has {summary['leases']} leases, fewer than "
                f"the {min_leases} asked for"
            )
        started = time.perf_counter()
        result = await run_audit(Path(tmp) / "run")
        elapsed = time.perf_counter() - started
    return {
        "leases": len(result.leases),
        "leases_verified": result.leases_verified,
        "audit_s": round(elapsed, 2),
        "ok": result.ok,
        "leases_verified_per_s": round(result.leases_verified / elapsed, 1),
        "run_wall_s": summary["wall_s"],
        "epochs": epochs,
    }
