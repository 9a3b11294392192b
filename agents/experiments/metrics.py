"""Run-level metrics, each defined once: intervals over samples, and what a run directory
says about its market and its training job.

- **mean and 95% interval** of ``n`` samples (region-epochs, seeds): the sample mean
  ``m`` and ``m ± t_{0.975, n-1} · s / √n`` (Student's t, ``s`` the sample standard
  deviation); NaN samples (a metric undefined for that sample) are left out, and with
  fewer than two samples the interval is NaN;
- **clearing-price volatility**: the coefficient of variation ``σ / μ`` (population
  standard deviation) of a region's per-epoch clearing price over the epochs it traded,
  averaged over regions;
- **default rate**: leases that defaulted / leases settled;
- **backlog** (orders waiting, per epoch, summed over regions — read from a
  ``backlog`` column of ``metrics.csv`` when the run records one): its mean, 95th
  percentile (linear interpolation) and least-squares slope per epoch (bounded
  below capacity, ~linear growth above it); the mean and slope of each region's own
  backlog too (``backlog_mean.r1``, ``backlog_slope.r1``, ...);
- **the market** (from the run's frozen books, ``books.jsonl``, each region-epoch's
  book allocated again by the mechanism its region ran, and measured by
  :func:`ledger.mechanisms.outcome.evaluate` against the book's exact optimum):
  ``efficiency`` and ``jain_fairness`` are means over region-epochs, ``revenue_wei``,
  ``buyer_surplus_wei``, ``budget_balance_wei`` and ``optimum_wei`` sums over them;
- **the job**: its last round's test accuracy and privacy ε, the mean of its rounds'
  delays and that mean over the delay budget (≤ 1 meets the Lyapunov constraint), the
  mean received SNR of its token uplinks (dB per symbol: what the privacy costs) and
  the mean of the scheduler's virtual delay queue ``Q`` after each round (s; ``O(V)``),
  the mean devices a round trained, and the mean accuracy of its last three rounds
  (``accuracy_last3``: one round's test accuracy moves by several points).
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExperimentError

__all__ = [
    "Interval",
    "backlog_stats",
    "default_rate",
    "job_metrics",
    "market_metrics",
    "mean_interval",
    "price_volatility",
    "run_metrics",
]


@dataclass(frozen=True)
class Interval:
    """A sample mean and its two-sided confidence interval."""

    mean: float
    lo: float
    hi: float
    n: int  # the samples it is over (NaN ones left out)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """The mean of ``values`` and its Student-t interval (see the module docstring)."""
    from scipy import stats

    xs = np.array([float(v) for v in values if not math.isnan(float(v))])
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(xs.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(xs.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def price_volatility(prices: Sequence[float]) -> float:
    """``σ / μ`` of the per-epoch clearing prices of epochs that traded (price > 0)."""
    traded = np.array([p for p in prices if p > 0], dtype=float)
    if len(traded) == 0:
        return math.nan
    return float(traded.std() / traded.mean())


def default_rate(defaults: int, leases: int) -> float:
    return defaults / leases if leases else math.nan


def backlog_stats(
    per_epoch: Sequence[float], epochs: Sequence[int] | None = None
) -> dict[str, float]:
    """Mean, 95th percentile and slope per epoch of a backlog series (``epochs``: the
    epoch of each value, when some epochs have none; default 0, 1, 2, ...)."""
    xs = np.array(per_epoch, dtype=float)
    if len(xs) == 0:
        return {"backlog_mean": math.nan, "backlog_p95": math.nan, "backlog_slope": math.nan}
    at = np.arange(len(xs)) if epochs is None else np.array(epochs, dtype=float)
    slope = float(np.polyfit(at, xs, 1)[0]) if len(xs) > 1 else math.nan
    return {
        "backlog_mean": float(xs.mean()),
        "backlog_p95": float(np.percentile(xs, 95)),
        "backlog_slope": slope,
    }


def job_metrics(rounds: Sequence[dict[str, Any]], delay_budget_s: float) -> dict[str, float]:
    """The job's last accuracy and ε, mean delay, and mean delay over its budget."""
    nan = math.nan
    if not rounds:
        return {
            "accuracy": nan,
            "epsilon": nan,
            "delay_s": nan,
            "delay_over_budget": nan,
            "received_snr_db": nan,
            "queue_s_mean": nan,
            "accuracy_last3": nan,
            "devices_mean": nan,
        }
    delay = float(np.mean([float(r["delay_s"]) for r in rounds]))

    def mean_of(key: str) -> float:
        xs = [float(r[key]) for r in rounds if r.get(key) is not None]
        return float(np.mean(xs)) if xs else nan

    return {
        "accuracy": float(rounds[-1]["accuracy"]),
        "epsilon": float(rounds[-1]["epsilon"]),
        "delay_s": delay,
        "delay_over_budget": delay / delay_budget_s if delay_budget_s else nan,
        "received_snr_db": mean_of("received_snr_db"),
        "queue_s_mean": mean_of("queue_s"),
        "accuracy_last3": float(np.mean([float(r["accuracy"]) for r in rounds[-3:]])),
        "devices_mean": mean_of("devices"),
    }


def market_metrics(run_dir: Path) -> dict[str, float]:
    """The market's metrics over the books the run kept (empty when it kept none)."""
    from ledger.mechanisms import mechanism_by_name
    from ledger.mechanisms.outcome import evaluate

    from ..scenario import DEFAULT_MECHANISM
    from .books import BOOKS_FILE, read_books

    scenario = Path(run_dir) / "scenario.toml"
    if not (Path(run_dir) / BOOKS_FILE).exists() or not scenario.exists():
        return {}
    regions = tomllib.loads(scenario.read_text()).get("regions", [])
    mechanisms = {
        int(r["id"]): mechanism_by_name(r.get("mechanism", DEFAULT_MECHANISM)) for r in regions
    }
    outcomes = [evaluate(b, mechanisms[b.region].allocate(b)) for b in read_books(run_dir)]
    if not outcomes:
        return {}

    def mean(name: str) -> float:
        xs = [float(getattr(o, name)) for o in outcomes]
        xs = [x for x in xs if not math.isnan(x)]
        return float(np.mean(xs)) if xs else math.nan

    def total(name: str) -> float:
        return float(sum(getattr(o, name) for o in outcomes))

    return {
        "efficiency": mean("efficiency"),
        "jain_fairness": mean("jain_fairness"),
        "revenue_wei": total("revenue_wei"),
        "buyer_surplus_wei": total("buyer_surplus_wei"),
        "budget_balance_wei": total("budget_balance_wei"),
        "optimum_wei": total("optimum_wei"),
        "books": float(len(outcomes)),
    }


def _region_rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "metrics.csv"
    try:
        with open(path, newline="") as f:
            return [row for row in csv.DictReader(f) if row.get("kind") == "region"]
    except FileNotFoundError:
        raise ExperimentError(f"{run_dir} holds no run (no metrics.csv): run it first") from None


def run_metrics(run_dir: Path) -> dict[str, float]:
    """Every run-level metric of the run in ``run_dir`` (see the module docstring)."""
    run_dir = Path(run_dir)
    rows = _region_rows(run_dir)
    prices: dict[str, list[float]] = {}
    backlog: dict[int, float] = {}
    per_region: dict[str, dict[int, float]] = {}
    for row in rows:
        if row.get("backlog") not in (None, ""):  # orders wait through an outage too
            epoch = int(row["epoch"])
            backlog[epoch] = backlog.get(epoch, 0.0) + float(row["backlog"])
            per_region.setdefault(row["region"], {})[epoch] = float(row["backlog"])
        if row.get("note", "").startswith("region is down"):
            continue  # an outage is no price: it would read as a crash to zero
        prices.setdefault(row["region"], []).append(float(row["clearing_price_wei"] or 0))
    vols = [v for v in (price_volatility(p) for p in prices.values()) if not math.isnan(v)]
    rounds_path = run_dir / "rounds.jsonl"
    rounds = (
        [json.loads(line) for line in rounds_path.read_text().splitlines() if line.strip()]
        if rounds_path.exists()
        else []
    )
    budget = math.nan
    scenario = run_dir / "scenario.toml"
    if scenario.exists():  # the run's own copy, with the default the run took
        from ..scenario import DEFAULT_DELAY_BUDGET_S

        job = tomllib.loads(scenario.read_text()).get("job", {})
        budget = float(job.get("delay_budget_s", DEFAULT_DELAY_BUDGET_S))
    regions: dict[str, float] = {}  # each region's own backlog: its trouble stays its own
    for region, series in sorted(per_region.items(), key=lambda kv: int(kv[0])):
        epochs = sorted(series)  # a region whose node was gone has no rows for a while
        stats = backlog_stats([series[e] for e in epochs], epochs)
        regions[f"backlog_mean.r{region}"] = stats["backlog_mean"]
        regions[f"backlog_slope.r{region}"] = stats["backlog_slope"]
    out = {
        "price_volatility": float(np.mean(vols)) if vols else math.nan,
        "default_rate": default_rate(
            sum(int(r["defaults"] or 0) for r in rows), sum(int(r["leases"] or 0) for r in rows)
        ),
        **backlog_stats([backlog[e] for e in sorted(backlog)], sorted(backlog)),
        **regions,
        **job_metrics(rounds, budget),
        **market_metrics(run_dir),
    }
    return out
