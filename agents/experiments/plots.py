"""A sweep's plots (one PNG per metric the experiment names) and its ``index.html``.

Each plot puts the metric's mean over seeds against the experiment's x field, with
the 95% t-interval as error bars, one line per combination of the other swept
fields. A numeric x whose values are all above 0 and span two decades or more
(V = 0.001 ... 0.3) is drawn on a log axis. matplotlib draws with its Agg backend:
no screen, no GUI toolkit, the same pixels on a worker or a laptop.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["plot_metrics", "write_index"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _file_name(metric: str) -> str:
    return _UNSAFE.sub("_", metric) + ".png"


def _label(key: str, value: Any) -> str:
    return f"{key}={value}"


def plot_metrics(
    aggregate: pd.DataFrame, metrics: list[str], x: str | None, swept: list[str], out: Path
) -> list[Path]:
    """Draw one PNG per metric into ``out`` (made if absent); returns their paths. A metric
    with no column in ``aggregate`` is not drawn (the sweep says so)."""
    import matplotlib

    matplotlib.use("Agg")  # before pyplot: no display on workers or CI
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    others = [k for k in swept if k != x]
    drawn = []
    for metric in metrics:
        if metric not in aggregate:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        try:
            _draw(ax, aggregate, metric, x, others)
            path = out / _file_name(metric)
            fig.savefig(path, format="png")
        finally:
            plt.close(fig)
        drawn.append(path)
    return drawn


def _draw(ax: Any, aggregate: pd.DataFrame, metric: str, x: str | None, others: list[str]) -> None:
    frame = aggregate if x is not None else aggregate.assign(point=aggregate["point_id"])
    x = x or "point"
    categories = sorted(frame[x].unique(), key=lambda v: (isinstance(v, str), v))
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in categories)
    groups = frame.groupby(others, sort=True) if others else [((), frame)]
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        group = group.sort_values(x)
        xs = group[x] if numeric else [categories.index(v) for v in group[x]]
        mean = group[metric].astype(float)
        lo = (mean - group[f"{metric}_lo"].astype(float)).fillna(0).clip(lower=0)
        hi = (group[f"{metric}_hi"].astype(float) - mean).fillna(0).clip(lower=0)
        label = ", ".join(_label(k, v) for k, v in zip(others, key, strict=True)) or None
        ax.errorbar(xs, mean, yerr=[lo, hi], marker="o", capsize=4, label=label)
    if not numeric:
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    elif min(categories) > 0 and max(categories) >= 100 * min(categories):
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} (mean over seeds, 95% interval)")
    ax.grid(alpha=0.3)
    if others:
        ax.legend(fontsize="small")


def write_index(
    out: Path, title: str, plots: list[Path], aggregate: pd.DataFrame, notes: list[str]
) -> Path:
    """``out/index.html``: the plots, the notes and the aggregate table on one page."""
    images = "\n".join(
        f'<figure><img src="{html.escape(p.relative_to(out).as_posix())}" '
        f'alt="{html.escape(p.stem)}"></figure>'
        for p in plots
    )
    noted = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    table = aggregate.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.6g}")
    page = (
        "<!doctype html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}"
        "figure{display:inline-block;margin:0 1em 1em 0}"
        "table{border-collapse:collapse;font-size:small}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}</style></head><body>\n"
        f"<h1>{html.escape(title)}</h1>\n{images}\n"
        + (f"<ul>{noted}</ul>\n" if noted else "")
        + "<h2>Mean and 95% interval over seeds per point (aggregate.csv)</h2>\n"
        f"{table}\n</body></html>\n"
    )
    path = out / "index.html"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path
