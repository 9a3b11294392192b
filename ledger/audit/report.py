"""A self-contained HTML audit report: one file, no network fetches.

The audit's data is embedded as JSON; a small inline script draws every chart
as SVG: a spectrum occupancy timeline per region (channel x slot), clearing
prices and utilisation per epoch, defaults, and the training job's progress
(loss, accuracy, delay, epsilon per round, from round metrics verified against
the root). When it has drawn them it sets ``data-charts`` on ``<body>`` to the
number of charts; any script error is counted in ``data-errors`` — so a test in
a headless browser can check the page from the inside.
"""

from __future__ import annotations

import html
import json
from collections import defaultdict
from typing import Any

from .result import AuditResult

__all__ = ["render_report"]

_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('audit-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  let charts = 0;
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  function svg(container, w, h, title) {
    const box = document.createElement('figure');
    const cap = document.createElement('figcaption');
    cap.textContent = title;
    box.appendChild(cap);
    const s = el('svg', {width: w, height: h, viewBox: `0 0 ${w} ${h}`, class: 'chart'});
    box.appendChild(s);
    container.appendChild(box);
    charts += 1;
    return s;
  }
  function line(container, title, xs, series) {
    const w = 420, h = 180, p = 34;
    const s = svg(container, w, h, title);
    const all = series.flatMap(t => t.values).filter(v => v !== null && isFinite(v));
    const lo = Math.min(0, ...all), hi = Math.max(1e-12, ...all);
    const x0 = Math.min(...xs), x1 = Math.max(x0 + 1, ...xs);
    const X = x => p + (x - x0) / (x1 - x0) * (w - 2 * p);
    const Y = v => h - p - (v - lo) / (hi - lo) * (h - 2 * p);
    el('line', {x1: p, y1: h - p, x2: w - p, y2: h - p, stroke: '#888'}, s);
    el('line', {x1: p, y1: p, x2: p, y2: h - p, stroke: '#888'}, s);
    el('text', {x: 2, y: p, 'font-size': 10}, s).textContent = hi.toPrecision(3);
    series.forEach((t, i) => {
      const pts = xs.map((x, j) => [x, t.values[j]]).filter(q => q[1] !== null && isFinite(q[1]));
      el('polyline', {points: pts.map(q => `${X(q[0])},${Y(q[1])}`).join(' '), fill: 'none',
                      stroke: t.color, 'stroke-width': 2, class: 'series'}, s);
      el('text', {x: w - p - 90, y: p + 12 * i, 'font-size': 10, fill: t.color}, s).textContent = t.name;
    });
  }
  const colors = {active: '#2b8cbe', completed: '#31a354', relinquished: '#fdae6b',
                  defaulted: '#de2d26', expired: '#969696'};
  const regions = document.getElementById('regions');
  for (const r of data.regions) {
    const sec = document.createElement('section');
    const h = document.createElement('h2');
    h.textContent = `Region ${r.id}`;
    sec.appendChild(h);
    regions.appendChild(sec);
    const slots = r.leases.map(l => l.slot);
    const s0 = slots.length ? Math.min(...slots) : 0, s1 = (slots.length ? Math.max(...slots) : 0) + 1;
    const w = 420, hgt = 200, p = 30, cw = (w - 2 * p) / Math.max(1, s1 - s0), ch = (hgt - 2 * p) / r.channels;
    const s = svg(sec, w, hgt, `Spectrum occupancy (channel x slot), region ${r.id}`);
    for (let c = 0; c < r.channels; c++) {
      if (r.protected & (2 ** c)) el('rect', {x: p, y: hgt - p - (c + 1) * ch, width: w - 2 * p,
                                               height: ch, fill: '#eee', class: 'protected'}, s);
    }
    for (const l of r.leases) {
      el('rect', {x: p + (l.slot - s0) * cw, y: hgt - p - (l.first + l.units) * ch,
                  width: Math.max(1, cw - 1), height: l.units * ch - 1,
                  fill: colors[l.state] || '#000', class: 'lease'}, s);
    }
    el('text', {x: p, y: hgt - 8, 'font-size': 10}, s).textContent = `slot ${s0} → ${s1 - 1}`;
    el('text', {x: 2, y: p - 4, 'font-size': 10}, s).textContent = `${r.channels} channels`;
    line(sec, `Clearing price (wei per unit) and utilisation, region ${r.id}`, r.epochs.map(e => e.epoch),
         [{name: 'price / max', color: '#3182bd', values: r.epochs.map(e => e.price / Math.max(1, r.max_price))},
          {name: 'utilisation', color: '#31a354', values: r.epochs.map(e => e.utilisation)}]);
    line(sec, `Defaults per epoch, region ${r.id}`, r.epochs.map(e => e.epoch),
         [{name: 'defaults', color: '#de2d26', values: r.epochs.map(e => e.defaults)}]);
  }
  const training = document.getElementById('training');
  if (data.rounds.length) {
    const xs = data.rounds.map(r => r.round);
    for (const [key, color] of [['loss', '#756bb1'], ['accuracy', '#31a354'], ['delay_s', '#e6550d'], ['epsilon', '#636363']]) {
      line(training, `Training ${key} per round`, xs, [{name: key, color: color, values: data.rounds.map(r => r[key])}]);
    }
  } else {
    training.textContent = 'No training rounds were confirmed on the root.';
  }
  document.body.dataset.charts = String(charts);
})();
"""


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
                "utilisation": v["channels"] / info.num_channels,
            }
            for ep, v in sorted(by_epoch.items())
        ]
        out.append(
            {
                "id": region,
                "channels": info.num_channels,
                "protected": info.protected_mask,
                "max_price": max((e["price"] for e in epochs), default=1),
                "leases": [
                    {
                        "slot": lease.start // length,
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
        eps = m.get("epsilon")
        rows.append(
            {
                "round": r.round,
                "loss": m.get("loss"),
                "accuracy": m.get("accuracy"),
                "delay_s": m.get("delay_s"),
                "epsilon": eps if isinstance(eps, int | float) else None,
            }
        )
    return rows


def render_report(result: AuditResult, title: str = "specledger audit") -> str:
    data = {"regions": _region_data(result), "rounds": _rounds(result)}
    verdict = "All checks hold." if result.ok else f"{len(result.violations)} violation(s)."
    violations = "".join(f"<li>{html.escape(v.line())}</li>" for v in result.violations)
    summary = (
        f"{len(result.leases)} leases in {len(result.regions)} regions, "
        f"{len(result.settlements)} settlements, {len(result.checkpoints)} checkpoints, "
        f"{len(result.rounds)} confirmed rounds"
    )
    payload = json.dumps(data).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
figure {{ display: inline-block; margin: 0.5em; }} figcaption {{ font-size: 0.8em; }}
.chart {{ border: 1px solid #ccc; background: #fff; }}
.ok {{ color: #31a354; }} .bad {{ color: #de2d26; }}
</style></head>
<body data-charts="0" data-errors="0">
<script>window.addEventListener('error', function () {{
  document.body.dataset.errors = String(Number(document.body.dataset.errors) + 1); }});</script>
<h1>{html.escape(title)}</h1>
<p class="{"ok" if result.ok else "bad"}"><strong>{verdict}</strong> {html.escape(summary)}</p>
<ul id="violations">{violations}</ul>
<div id="regions"></div>
<h2>Training job</h2><div id="training"></div>
<script type="application/json" id="audit-data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
