"""A sweep's tables: one row per run, the mean and 95% interval per grid point, and the
hash that says two sweeps gave the same results.

A run's metrics are every number of its ``summary.json`` (nested tables flattened
with dots: ``chain_transactions.settle``, ``lease_states.completed``), its
``history_sha256``, and the run-level metrics of :mod:`agents.experiments.metrics`
(efficiency, revenue, fairness, backlog, ...), each a column.

The interval over seeds is Student's t: ``mean ± t(0.975, n-1) · s / sqrt(n)`` with
``s`` the sample standard deviation of the ``n`` complete runs of the point (none
with fewer than two): seeds are few, so the normal 1.96 would be too narrow.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pandas as pd
from scipy import stats

from ..rundir import read_summary

__all__ = [
    "NOT_HASHED",
    "aggregate",
    "results_frame",
    "results_sha256",
    "run_metrics",
]

#: columns that differ between two runs of the same experiment: timings, memory, reuse
NOT_HASHED = ("wall_s", "cpu_s", "peak_rss_mib", "reused")
#: summary fields that are not results: where and how the run ran, or lists
_NOT_METRICS = frozenset(
    {"seed", "wall_s", "time_s", "scenario", "backend", "complete", "interrupted", "stopped"}
)
_FRONT = ("run_id", "point_id")
_BACK = ("status", "error", "wall_s", "cpu_s", "reused", "run_dir")


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if not prefix and key in _NOT_METRICS:
            continue
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[name] = value
    return flat


def _module_metrics(run_dir: Path) -> dict[str, Any]:
    """The run-level metrics of :mod:`agents.experiments.metrics`, flattened."""
    from . import metrics

    return _flatten(metrics.run_metrics(run_dir))


def _int64(value: int) -> int | float:
    """``value``, as a float where parquet's int64 cannot hold it."""
    return value if -(2**63) <= value < 2**63 else float(value)


def _csv_metrics(run_dir: Path) -> dict[str, Any]:
    """Run totals and means of ``metrics.csv``: ``welfare_wei`` (the sum over region-epochs),
    ``clearing_price_wei_mean`` (over settled region-epochs with a price),
    ``utilisation_mean``, and of the rounds ``delay_s_mean``, ``energy_j`` (the sum)
    and ``epsilon`` (the last round's: the accountant's total)."""
    try:
        frame = pd.read_csv(run_dir / "metrics.csv")
    except (OSError, ValueError):
        return {}
    regions, rounds = frame[frame["kind"] == "region"], frame[frame["kind"] == "round"]
    prices = pd.to_numeric(regions["clearing_price_wei"], errors="coerce")
    found: dict[str, Any] = {
        "welfare_wei": _int64(sum(int(v) for v in regions["welfare_wei"].dropna())),
        "clearing_price_wei_mean": float(prices[prices > 0].mean()) if (prices > 0).any() else 0.0,
        "utilisation_mean": float(regions["utilisation"].mean()) if len(regions) else 0.0,
    }
    if len(rounds):
        found["delay_s_mean"] = float(rounds["delay_s"].mean())
        found["energy_j"] = float(rounds["energy_j"].sum())
        found["epsilon"] = float(rounds["epsilon"].iloc[-1])
    return found


def run_metrics(run_dir: Path) -> dict[str, Any]:
    """Every metric of the complete run in ``run_dir``: one flat mapping of columns (a name
    two sources give is taken from the first: summary, metrics module, metrics.csv)."""
    summary = read_summary(run_dir) or {}
    found = _flatten(summary)
    found["history_sha256"] = summary.get("history_sha256")
    for key, value in [*_module_metrics(run_dir).items(), *_csv_metrics(run_dir).items()]:
        found.setdefault(key, value)
    return found


def results_frame(rows: list[dict[str, Any]], swept: list[str]) -> pd.DataFrame:
    """One row per run: its id, point, swept fields, seed, metrics, status and timings."""
    frame = pd.DataFrame(rows)
    for key in (*_FRONT, *swept, "seed", *_BACK):
        if key not in frame:
            frame[key] = None
    # a lease state no run of the point reached is a count of 0, not unknown
    states = [c for c in frame if c.startswith("lease_states.")]
    ok = frame["status"] == "ok"
    frame.loc[ok, states] = frame.loc[ok, states].fillna(0)
    metrics = sorted(c for c in frame if c not in {*_FRONT, *swept, "seed", *_BACK})
    order = [*_FRONT, *swept, "seed", *metrics, *_BACK]
    return frame[order].sort_values("run_id", kind="stable").reset_index(drop=True)


def metric_columns(results: pd.DataFrame, swept: list[str]) -> list[str]:
    """The numeric columns that are results (not ids, fields, seeds or flags)."""
    skip = {*_FRONT, *swept, "seed", "reused", "status", "error", "run_dir"}
    return [
        c
        for c in results
        if c not in skip
        and pd.api.types.is_numeric_dtype(results[c])
        and not pd.api.types.is_bool_dtype(results[c])
    ]


def _interval(values: pd.Series) -> tuple[float, float, float]:
    """(mean, lo, hi): the t-interval of ``values`` (lo = hi = NaN below two values)."""
    x = values.dropna().astype(float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def aggregate(results: pd.DataFrame, swept: list[str]) -> pd.DataFrame:
    """Per grid point: its fields, ``runs`` (complete ones), ``failed``, and for every
    metric its mean over seeds with ``_lo``/``_hi`` for the 95% t-interval."""
    metrics = metric_columns(results, swept)
    rows = []
    for point_id, group in results.groupby("point_id", sort=False):
        ok = group[group["status"] == "ok"]
        row: dict[str, Any] = {"point_id": point_id}
        row.update({k: group[k].iloc[0] for k in swept})
        row["runs"] = len(ok)
        row["failed"] = len(group) - len(ok)
        for m in metrics:
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = _interval(ok[m])
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values([*swept, "point_id"], kind="stable").reset_index(drop=True)


def canonical_csv(results: pd.DataFrame) -> str:
    """The results without the columns that differ between identical sweeps, as CSV:
    rows by run id, floats to 12 significant digits, ``\\n`` line ends."""
    kept = results[[c for c in results if c not in NOT_HASHED]].sort_values("run_id")
    text: str = kept.to_csv(index=False, float_format="%.12g", lineterminator="\n")
    return text


def results_sha256(results: pd.DataFrame) -> str:
    """The sha256 of :func:`canonical_csv`: equal for the same experiment and seeds."""
    return hashlib.sha256(canonical_csv(results).encode()).hexdigest()
