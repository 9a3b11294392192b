"""``specledger bench sweep``: the same small sweep on 1 and on 2 dask workers.

Figures (each timed one the median of ``repeats``, with min and max):

- ``sweep_wall_s``: one whole sweep into a fresh folder on a cluster that is already
  up and warm (every worker has imported the simulation, the audit and torch once;
  ``cluster_start_s`` and ``warm_s`` are that set-up, paid once per sweep command);
- ``speedup_2_workers`` = median ``sweep_wall_s`` on 1 worker / on 2 (target >= 1.6);
- ``run_cpu_s_sum``: the CPU seconds the runs themselves used, and ``cpu_per_wall``
  = that / ``sweep_wall_s``: how many cores the runs really had. On a machine whose
  cores other processes share, this is the ceiling of any speedup;
- ``dask_overhead_per_run_s``: ``round_trip_s``, the median wall time of a no-op
  task submitted and gathered through the cluster minus the same call made
  directly (what dask adds to every run, measured alone), and ``slack_s`` =
  (``sweep_wall_s`` x workers - the sum of the runs' own wall seconds) / runs: every
  second a worker was not running a run (dispatch, polling, the tables and plots),
  charged to each run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import ExperimentError
from .experiment import load_experiment
from .sweep import cluster_client, run_sweep

__all__ = ["bench_sweep"]

TRIVIAL_TASKS = 20


def _warm() -> bool:
    """What every run imports, imported once per worker before anything is timed."""
    import torch  # noqa: F401

    import agents.run  # noqa: F401
    import ledger.audit
    import ledger.chain  # noqa: F401

    return True


def _noop(i: int) -> int:
    return i


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def _round_trip(client: Any) -> float:
    """Median seconds dask adds to one task: submitted and gathered minus called."""
    through, direct = [], []
    for i in range(TRIVIAL_TASKS):
        t = time.perf_counter()
        client.submit(_noop, i, pure=False).result()
        through.append(time.perf_counter() - t)
        t = time.perf_counter()
        _noop(i)
        direct.append(time.perf_counter() - t)
    return statistics.median(through) - statistics.median(direct)


def bench_sweep(experiment_path: Path, repeats: int = 3) -> dict[str, Any]:
    """Sweep ``experiment_path`` ``repeats`` times with 1 and with 2 workers."""
    import matplotlib.pyplot  # noqa: F401 - the sweep's plots: imported before timing

    experiment = load_experiment(experiment_path)
    runs = sum(1 for r in experiment.runs() if not r.invalid)
    load_before = os.getloadavg()
    by_workers: dict[str, dict[str, Any]] = {}
    hashes: set[str] = set()
    for workers in (1, 2):
        t = time.perf_counter()
        with cluster_client(workers) as client:
            client.wait_for_workers(workers)
            started = time.perf_counter() - t
            t = time.perf_counter()
            client.run(_warm)
            warm = time.perf_counter() - t
            round_trip = _round_trip(client)
            walls, run_walls, run_cpus = [], [], []
            for _ in range(repeats):
                with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
                    t = time.perf_counter()
                    result = run_sweep(experiment, Path(tmp) / "sweep", client=client)
                    walls.append(time.perf_counter() - t)
                ok = result.results[result.results["status"] == "ok"]
                if len(ok) != runs:
                    errors = result.results["error"].dropna().unique()[:1]
                    raise ExperimentError(f"bench sweep: a run failed: {', '.join(errors)}")
                run_walls.append(float(ok["wall_s"].sum()))
                run_cpus.append(float(ok["cpu_s"].sum()))
                hashes.add(result.summary["results_sha256"])
        slack = [(w * workers - rw) / runs for w, rw in zip(walls, run_walls, strict=True)]
        by_workers[str(workers)] = {
            "cluster_start_s": round(started, 3),
            "warm_s": round(warm, 3),
            "sweep_wall_s": _spread(walls),
            "run_wall_s_sum": _spread(run_walls),
            "run_cpu_s_sum": _spread(run_cpus),
            "cpu_per_wall": _spread([c / w for c, w in zip(run_cpus, walls, strict=True)]),
            "dask_overhead_per_run_s": {
                "round_trip_s": round(round_trip, 5),
                "slack_s": _spread(slack),
            },
        }
    one, two = by_workers["1"], by_workers["2"]
    speedup = one["sweep_wall_s"]["median"] / two["sweep_wall_s"]["median"]
    return {
        "experiment": str(experiment_path),
        "runs": runs,
        "repeats": repeats,
        "workers": by_workers,
        "speedup_2_workers": round(speedup, 3),
        "speedup_target": 1.6,
        "meets_target": speedup >= 1.6,
        "same_results_sha256": len(hashes) == 1,
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1m": {"before": load_before[0], "after": os.getloadavg()[0]},
    }
