"""``specledger bench market``: what a user waits for, with its spread.

``bench market``: for each size (default 100, 1,000 and 10,000 agents) a scenario
is generated (4 regions, a few operators and servers, the rest edge devices, one
coordinator whose job has a training round in every epoch) and run on the embedded
backend: one warm-up epoch, then MIN_REPEATS timed epochs, each holding offers, the
coordinator's bids, winning leases, their lifecycle (heartbeats, completions,
expiries, the round's confirmation on the root) and a training round. A timed epoch
that settles no lease or trains no round is an error, not a figure. Per size:

- ``agents``, ``runs``: each size runs MIN_REPEATS times from scratch; ``setup_s``:
  bringing up the chains and joining every agent, a spread over the runs;
- ``market_epoch_s``: an epoch's wall time without its training round (submit,
  settle every region, lease lifecycle), ``training_round_s``: the round alone,
  ``submit_s`` and ``settle_s``: the epoch's signing and admission of every order,
  and every region's settlement; each a spread (median, min, max, n) over the timed
  epochs of every run;
- ``epoch_s``: the whole timed epochs' ``wall_s`` beside their ``cpu_s`` (CPU
  seconds of this process, the embedded chains and the training included);
- ``orders_per_s``: offers and bids admitted per second of submit time, a spread;
- ``leases_per_epoch``, ``offers_per_epoch``, ``bids_per_epoch``: counts, the mean
  over the timed epochs (the scenario is seeded: the same every run);
- ``leases``, ``chain_transactions``, ``peak_rss_mib``: the last run's summary (every
  lease, the warm-up's included; its transactions by kind; this process's peak memory).

``bench audit``: see :mod:`agents.audit_bench`.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.bench.stats import MIN_REPEATS, Timing, spread

from .errors import AgentError

if TYPE_CHECKING:  # the run (and torch) load when a benchmark runs, not on import: each
    from .run import EpochReport, Simulation  # audit's fresh process imports this module

__all__ = ["bench_market"]

WARM_UP_EPOCHS = 1

TEMPLATE = """
seed = 5
epochs = {epochs}
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
rounds = {epochs}
devices_per_round = 8
budget_eth = 20
"""


def _scenario(agents: int, epochs: int) -> str:
    regions = "".join(
        f'\n[[regions]]\nid = {i}\nmechanism = "proportional_fair"\nchannels = 64\n'
        for i in range(4)
    )
    return TEMPLATE.format(regions=regions, devices=agents - 15, epochs=epochs)


class _EpochClock:
    """Each epoch's wall and CPU seconds, and when the set-up ended (the first epoch began)."""

    def __init__(self) -> None:
        self.timing = Timing()
        self.set_up_done: tuple[float, float] | None = None

    async def measure(self, epoch: Awaitable[EpochReport]) -> EpochReport:
        wall, cpu = time.perf_counter(), time.process_time()
        if self.set_up_done is None:
            self.set_up_done = wall, cpu
        report = await epoch
        self.timing.add(time.perf_counter() - wall, time.process_time() - cpu)
        return report


def _timed_simulation(
    path: Path, out: Path, reports: list[EpochReport]
) -> tuple[Simulation, _EpochClock]:
    """The scenario at ``path`` as a simulation whose epochs a clock times."""
    from .run import Simulation
    from .scenario import load_scenario

    clock = _EpochClock()

    class Timed(Simulation):
        async def run_epoch(self, epoch: int) -> EpochReport:
            return await clock.measure(super().run_epoch(epoch))

    return Timed(load_scenario(path), out, progress=reports.append), clock


def _checked(reports: list[EpochReport], agents: int) -> list[EpochReport]:
    """The timed epochs, each of which must have settled leases and trained a round."""
    timed = reports[WARM_UP_EPOCHS:]
    if len(timed) < MIN_REPEATS:
        raise AgentError(
            f"bench market ({agents} agents): {len(timed)} timed epochs ran, "
            f"{MIN_REPEATS} were planned"
        )
    for r in timed:
        why = "; ".join(r.notes[:3]) or "no note"
        if r.leases == 0:
            raise AgentError(
                f"bench market ({agents} agents): timed epoch {r.epoch} settled no lease ({why})"
            )
        if r.round_loss is None or r.train_s <= 0:
            raise AgentError(
                f"bench market ({agents} agents): timed epoch {r.epoch} ran no training "
                f"round ({why})"
            )
    return timed


def _mean(values: list[int]) -> float:
    return round(statistics.mean(values), 1)


async def _market_run(agents: int, tmp: Path) -> tuple[Any, list[EpochReport], Timing, Any]:
    """One run of the size's scenario: (its set-up's (wall, cpu), its timed epochs' reports,
    their timing, its summary)."""
    epochs = WARM_UP_EPOCHS + MIN_REPEATS
    tmp.mkdir(parents=True)
    path = tmp / f"market-{agents}.toml"
    path.write_text(_scenario(agents, epochs))
    reports: list[EpochReport] = []
    simulation, clock = _timed_simulation(path, tmp / "run", reports)
    began = time.perf_counter(), time.process_time()
    summary = await simulation.run()
    if summary["interrupted"]:
        raise AgentError(f"bench market ({agents} agents): the run stopped: {summary['stopped']}")
    timed = _checked(reports, agents)
    assert clock.set_up_done is not None, "a run with epochs started one"
    epoch_s = Timing()
    for wall, cpu in list(zip(clock.timing.wall, clock.timing.cpu, strict=True))[WARM_UP_EPOCHS:]:
        epoch_s.add(wall, cpu)
    set_up = (clock.set_up_done[0] - began[0], clock.set_up_done[1] - began[1])
    return set_up, timed, epoch_s, summary


async def _market_size(agents: int, tmp: Path, runs: int) -> dict[str, Any]:
    """``runs`` runs of the size (set-up spread over the runs; every epoch figure over
    all their timed epochs)."""
    set_up, timed, epoch_s = Timing(), [], Timing()
    for r in range(max(runs, MIN_REPEATS)):
        (wall, cpu), reports, epochs, summary = await _market_run(agents, tmp / f"run-{r}")
        set_up.add(wall, cpu)
        timed.extend(reports)
        for w, c in zip(epochs.wall, epochs.cpu, strict=True):
            epoch_s.add(w, c)
    return {
        "agents": summary["agents"],
        "runs": len(set_up.wall),
        "setup_s": set_up.seconds(2),
        "market_epoch_s": spread([r.wall_s - r.train_s for r in timed]),
        "training_round_s": spread([r.train_s for r in timed]),
        "submit_s": spread([r.submit_s for r in timed]),
        "settle_s": spread([r.settle_s for r in timed]),
        "epoch_s": epoch_s.seconds(),
        "orders_per_s": spread([(r.offers + r.bids) / r.submit_s for r in timed], 1),
        "leases_per_epoch": _mean([r.leases for r in timed]),
        "offers_per_epoch": _mean([r.offers for r in timed]),
        "bids_per_epoch": _mean([r.bids for r in timed]),
        "leases": summary["leases"],
        "chain_transactions": summary["chain_transactions"],
        "peak_rss_mib": summary["peak_rss_mib"],
    }


async def bench_market(
    sizes: tuple[int, ...] = (100, 1000, 10000), runs: int = MIN_REPEATS
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "backend": "embedded",
        "warm_up_epochs": WARM_UP_EPOCHS,
        "timed_epochs_per_run": MIN_REPEATS,
        "sizes": [],
    }
    for agents in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-market-") as tmp:
            results["sizes"].append(await _market_size(agents, Path(tmp), runs))
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


def _one_audit(run_dir: str, index: str, keccak: str) -> dict[str, Any]:
    """One full audit of ``run_dir`` with a fresh index ``index``, in a process of its own."""
    from ledger.audit import run_audit
    from ledger.chain import use_fast_keccak

    if keccak == "PySha3Backend":  # a spawned process starts afresh: as the caller
        use_fast_keccak()
    wall, cpu = time.perf_counter(), time.process_time()
    result = asyncio.run(run_audit(Path(run_dir), index=Path(index)))
    return {
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
        "leases": len(result.leases),
        "leases_verified": result.leases_verified,
        "ok": result.ok,
    }
