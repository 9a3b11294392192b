"""A self-contained HTML audit report: one file, no network fetches.

First the verdict and every violation (check, chain, block, transaction, lease,
what is wrong), in a table one can filter; then a table of every lease, searched
by lease id, participant address or transaction and filtered by region and
state; then the charts, each with both axes, ticks and units: per region its
spectrum occupancy (channel x time slot), clearing price, utilisation and
defaults per epoch, and the training job's progress per round (loss, accuracy,
delay, energy, epsilon, from round metrics verified against the root).

The audit's data is embedded as JSON; the inline script of
:mod:`ledger.audit.report_script` draws and filters it, and marks ``<body>`` for
a test in a headless browser (``data-charts``, ``data-leases``, ``data-errors``).
"""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from typing import Any

from .report_script import SCRIPT, STYLE
from .result import AuditResult, Violation

__all__ = ["render_report"]

#: the lease table's columns (fields of :class:`~ledger.audit.result.LeaseRow`)
LEASE_COLUMNS = [
    "lease_id",
    "region",
    "kind",
    "epoch",
    "seller",
    "buyer",
    "first",
    "units",
    "price_wei",
    "state",
    "settle_block",
    "settle_tx",
    "state_block",
    "state_tx",
]
_KINDS = {0: "spectrum", 1: "compute"}


def _finite(value: Any) -> float | None:
    """A number the page can plot (JSON has no inf or NaN), or None."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return value if ok and math.isfinite(value) else None


def _region_data(result: AuditResult) -> list[dict[str, Any]]:
    out = []
    for region, info in sorted(result.regions.items()):
        length = info.epoch_length_s
        leases = [lease for lease in result.leases if lease.region == region]
        by_epoch: dict[int, dict[str, float]] = defaultdict(
            lambda: {"price": 0, "channels": 0, "defaults": 0}
        )
        for lease in leases:
            e = by_epoch[lease.epoch]
            e["price"] = max(e["price"], int(lease.price_wei) // max(1, lease.units))
            if lease.kind == 0:
                e["channels"] += lease.units
            if lease.state == "defaulted":
                e["defaults"] += 1
        epochs = [
            {
                "epoch": ep,
                "price": v["price"],
                "defaults": v["defaults"],
                "utilisation": v["channels"] / max(1, info.num_channels),
            }
            for ep, v in sorted(by_epoch.items())
        ]
        out.append(
            {
                "id": region,
                "name": info.name,
                "channels": info.num_channels,
                "protected": info.protected_mask,
                "epoch_length_s": length,
                "max_price": max((e["price"] for e in epochs), default=1),
                "leases": [
                    {
                        "slot": lease.start // max(1, length),
                        "first": lease.first,
                        "units": lease.units,
                        "state": lease.state,
                    }
                    for lease in leases
                    if lease.kind == 0
                ],
                "epochs": epochs,
            }
        )
    return out


def _rounds(result: AuditResult) -> list[dict[str, Any]]:
    rows = []
    for r in result.rounds:
        if not r.metrics:
            continue
        m = json.loads(r.metrics)
        keys = ("loss", "accuracy", "delay_s", "energy_j", "epsilon")
        rows.append({"round": r.round, **{k: _finite(m.get(k)) for k in keys}})
    return rows


def _leases(result: AuditResult) -> list[list[Any]]:
    rows = []
    for lease in result.leases:
        row = [getattr(lease, c) for c in LEASE_COLUMNS]
        row[2] = _KINDS.get(lease.kind, str(lease.kind))
        rows.append([v.lower() if isinstance(v, str) and v.startswith("0x") else v for v in row])
    return rows


def _violation_table(
    violations: list[Violation], heading: str = "Violations", table: str = "violations"
) -> str:
    """Violations (searchable) or warnings, one row each with chain, block and transaction."""
    if not violations:
        return ""
    cells = [
        (v.check, v.chain, "" if v.block is None else str(v.block), v.tx or "", v.lease or "")
        for v in violations
    ]
    rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(c)}</td>" for c in cell)
        + f"<td>{html.escape(v.detail)}</td></tr>"
        for cell, v in zip(cells, violations, strict=True)
    )
    search = (
        """<div class="filters"><input id="violation-q" type="search"
 placeholder="filter violations: check, chain, block, transaction, lease, text"></div>"""
        if table == "violations"
        else ""
    )
    return f"""<h2>{heading}</h2>
{search}
<table id="{table}"><thead><tr><th>check</th><th>chain</th><th>block</th>
<th>transaction</th><th>lease</th><th>what is wrong</th></tr></thead>
<tbody>{rows}</tbody></table>"""


def render_report(result: AuditResult, title: str = "specledger audit") -> str:
    data = {
        "regions": _region_data(result),
        "rounds": _rounds(result),
        "lease_columns": LEASE_COLUMNS,
        "leases": _leases(result),
    }
    verdict = "All checks hold." if result.ok else f"{len(result.violations)} violation(s)."
    summary = (
        f"{len(result.leases)} leases in {len(result.regions)} regions, "
        f"{len(result.settlements)} settlements, {len(result.checkpoints)} checkpoints, "
        f"{len(result.rounds)} confirmed rounds"
    )
    heads = ", ".join(f"{c.name} block {c.head_block} ({c.head_hash})" for c in result.chains)
    header = "".join(f"<th>{html.escape(c)}</th>" for c in LEASE_COLUMNS)
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head>
<body data-charts="0" data-leases="0" data-errors="0">
<script>window.addEventListener('error', function () {{
  document.body.dataset.errors = String(Number(document.body.dataset.errors) + 1); }});</script>
<h1>{html.escape(title)}</h1>
<p class="{"ok" if result.ok else "bad"}"><strong>{verdict}</strong> {html.escape(summary)}</p>
<p class="heads">Audited up to: {html.escape(heads)}</p>
{_violation_table(result.violations)}
{_violation_table(result.warnings, "Warnings (no rule broken)", "warnings")}
<h2>Leases</h2>
<div class="filters"><input id="lease-q" type="search"
 placeholder="lease id, participant address or transaction (0x...)">
<select id="lease-region"><option value="">every region</option></select>
<select id="lease-state"><option value="">every state</option></select>
<span id="lease-count"></span></div>
<div class="scroll"><table id="leases"><thead><tr>{header}</tr></thead><tbody></tbody>
</table></div>
<div id="regions"></div>
<h2>Training job</h2><div id="training"></div>
<script type="application/json" id="audit-data">{payload}</script>
<script>{SCRIPT}</script>
</body></html>
"""
