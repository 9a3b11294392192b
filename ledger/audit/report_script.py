"""The audit report's inline script and style (plain JavaScript and CSS, no library).

:func:`ledger.audit.report.render_report` embeds both in its one HTML file. The
script reads the audit's data (``#audit-data``) and draws every chart as SVG
with both axes: ticks, tick labels and an axis title with its unit. It fills
the lease table, filtered as one types (lease id, participant address or
transaction; region; state), and filters the violation table the same way.
When it is done it sets on ``<body>``: ``data-charts`` (charts drawn),
``data-leases`` (leases that match the filters); ``data-errors`` counts script
errors — so a test in a headless browser can check the page from the inside.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.85em; font-weight: bold; }
.chart { border: 1px solid #ccc; background: #fff; }
.chart text { font-size: 10px; fill: #333; }
.chart .axis-label { font-size: 11px; fill: #000; }
.legend { font-size: 0.8em; } .legend span { display: inline-block; margin-right: 0.8em; }
.legend i { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.25em; }
.ok { color: #31a354; } .bad { color: #de2d26; }
table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 5px; text-align: left; }
th { background: #f4f4f4; } td.hash { font-family: monospace; }
#violations td { background: #fff0f0; }
.filters input[type=search] { width: 30em; } .filters { margin: 0.5em 0; }
.scroll { max-height: 24em; max-width: 100%; overflow: auto; display: inline-block; }
.heads { font-size: 0.8em; color: #555; }
.scroll th { position: sticky; top: 0; }
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('audit-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  let charts = 0;
  function el(name, attrs, parent, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function html(name, text, parent) {
    const e = document.createElement(name);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function ticks(lo, hi, n, integer) {  // round numbers covering [lo, hi]
    if (!(hi > lo)) return [lo];
    let step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    for (const m of [2, 2.5, 2]) { if ((hi - lo) / step > n) step *= m; }
    if (integer) step = Math.max(1, Math.round(step));
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
      out.push(Number(v.toPrecision(12)));
    }
    return out;
  }
  function fmt(v) {
    const a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e9) return String(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(1);
    return String(Number(v.toPrecision(4)));
  }
  function legend(box, items) {
    const p = html('div', undefined, box);
    p.className = 'legend';
    for (const [name, color] of items) {
      const s = html('span', undefined, p);
      html('i', undefined, s).style.background = color;
      s.appendChild(document.createTextNode(name));
    }
  }
  // a chart: a figure with an SVG plot, its axes (ticks, tick labels, titles with units)
  function frame(container, title, o) {
    const w = 470, h = 240, m = {l: 64, r: 26, t: 12, b: 44};
    const box = html('figure', undefined, container);
    html('figcaption', title, box);
    const s = el('svg', {width: w, height: h, viewBox: `0 0 ${w} ${h}`, class: 'chart'}, box);
    charts += 1;
    const [x0, x1] = o.x, [y0, y1] = o.y;
    const X = v => m.l + (v - x0) / (x1 - x0) * (w - m.l - m.r);
    const Y = v => h - m.b - (v - y0) / (y1 - y0) * (h - m.t - m.b);
    const ax = el('g', {class: 'axis x-axis'}, s);
    el('line', {x1: m.l, y1: h - m.b, x2: w - m.r, y2: h - m.b, stroke: '#444'}, ax);
    const base = h - m.b;
    for (const t of ticks(x0, x1, 6, o.xint)) {
      el('line', {x1: X(t), x2: X(t), y1: base, y2: base + 4, stroke: '#444', class: 'tick'}, ax);
      el('text', {x: X(t), y: base + 15, 'text-anchor': 'middle', class: 'tick-label'}, ax, fmt(t));
    }
    el('text', {x: (m.l + w - m.r) / 2, y: h - 8, 'text-anchor': 'middle', class: 'axis-label'},
       ax, o.xlabel);
    const ay = el('g', {class: 'axis y-axis'}, s);
    el('line', {x1: m.l, y1: m.t, x2: m.l, y2: h - m.b, stroke: '#444'}, ay);
    for (const t of ticks(y0, y1, 5, o.yint)) {
      el('line', {x1: m.l - 4, x2: w - m.r, y1: Y(t), y2: Y(t), stroke: '#eee', class: 'tick'}, ay);
      el('line', {x1: m.l - 4, x2: m.l, y1: Y(t), y2: Y(t), stroke: '#444'}, ay);
      el('text', {x: m.l - 7, y: Y(t) + 3, 'text-anchor': 'end', class: 'tick-label'}, ay, fmt(t));
    }
    const cy = (m.t + h - m.b) / 2;
    el('text', {x: 13, y: cy, 'text-anchor': 'middle', transform: `rotate(-90 13 ${cy})`,
                class: 'axis-label'}, ay, o.ylabel);
    return {s, X, Y, box};
  }
  function span(values, floor) {  // a value range that starts at 0 (or below) and is never empty
    const v = values.filter(x => x !== null && isFinite(x));
    const lo = Math.min(0, ...v), hi = Math.max(floor, ...v);
    const t = ticks(lo, hi, 5, false);
    return [lo, Math.max(hi, t[t.length - 1])];
  }
  function line(container, title, xs, series, xlabel, ylabel, yfloor, yint) {
    const xlo = Math.min(...xs), xhi = Math.max(...xs);
    const f = frame(container, title, {
      x: xlo === xhi ? [xlo - 1, xhi + 1] : [xlo, xhi], xint: true,
      y: span(series.flatMap(t => t.values), yfloor || 1e-9), yint: yint,
      xlabel: xlabel, ylabel: ylabel});
    for (const t of series) {
      const pts = xs.map((x, j) => [x, t.values[j]]).filter(q => q[1] !== null && isFinite(q[1]));
      el('polyline', {points: pts.map(q => `${f.X(q[0])},${f.Y(q[1])}`).join(' '), fill: 'none',
                      stroke: t.color, 'stroke-width': 2, class: 'series'}, f.s);
      for (const q of pts) {
        el('circle', {cx: f.X(q[0]), cy: f.Y(q[1]), r: 2.5, fill: t.color, class: 'point'}, f.s);
      }
    }
    if (series.length > 1) legend(f.box, series.map(t => [t.name, t.color]));
  }
  function unitOf(maxWei) {  // the largest unit that keeps numbers readable
    for (const [scale, name] of [[1e18, 'ETH'], [1e9, 'gwei']]) {
      if (maxWei >= scale / 100) return [scale, name];
    }
    return [1, 'wei'];
  }
  const colors = {active: '#2b8cbe', completed: '#31a354', relinquished: '#fdae6b',
                  defaulted: '#de2d26', expired: '#969696'};
  const regions = document.getElementById('regions');
  for (const r of data.regions) {
    const sec = html('section', undefined, regions);
    html('h2', `Region ${r.id} (${r.name})`, sec);
    const slots = r.leases.map(l => l.slot);
    const s0 = slots.length ? Math.min(...slots) : 0, s1 = slots.length ? Math.max(...slots) : 0;
    const f = frame(sec, `Spectrum occupancy, region ${r.id}`, {
      x: [s0 - 0.5, s1 + 0.5], y: [-0.5, r.channels - 0.5], xint: true, yint: true,
      xlabel: `time slot (epoch number; ${r.epoch_length_s} s each)`, ylabel: 'channel (index)'});
    for (let c = 0; c < r.channels; c++) {
      if (!(r.protected & (2 ** c))) continue;
      el('rect', {x: f.X(s0 - 0.5), y: f.Y(c + 0.5), width: f.X(s1 + 0.5) - f.X(s0 - 0.5),
                  height: f.Y(c - 0.5) - f.Y(c + 0.5), fill: '#e4e4e4', class: 'protected'}, f.s);
    }
    for (const l of r.leases) {
      el('rect', {x: f.X(l.slot - 0.5) + 0.5, y: f.Y(l.first + l.units - 0.5) + 0.5,
                  width: Math.max(1, f.X(l.slot + 0.5) - f.X(l.slot - 0.5) - 1),
                  height: Math.max(1, f.Y(l.first - 0.5) - f.Y(l.first + l.units - 0.5) - 1),
                  fill: colors[l.state] || '#000', class: 'lease'}, f.s);
    }
    legend(f.box, [...Object.entries(colors), ['protected band', '#e4e4e4']]);
    const epochs = r.epochs.map(e => e.epoch);
    if (!epochs.length) continue;
    const [scale, unit] = unitOf(r.max_price);
    line(sec, `Clearing price per unit (highest per epoch), region ${r.id}`, epochs,
         [{name: 'price', color: '#3182bd', values: r.epochs.map(e => e.price / scale)}],
         'epoch', `price (${unit} per unit)`);
    line(sec, `Spectrum utilisation, region ${r.id}`, epochs,
         [{name: 'utilisation', color: '#31a354', values: r.epochs.map(e => 100 * e.utilisation)}],
         'epoch', 'channels leased (%)', 100);
    line(sec, `Defaults per epoch, region ${r.id}`, epochs,
         [{name: 'defaults', color: '#de2d26', values: r.epochs.map(e => e.defaults)}],
         'epoch', 'leases defaulted (count)', 1, true);
  }
  const training = document.getElementById('training');
  if (data.rounds.length) {
    const xs = data.rounds.map(r => r.round);
    const plots = [['loss', 'test loss', 1, '#756bb1'],
                   ['accuracy', 'test accuracy (%)', 100, '#31a354'],
                   ['delay_s', 'round delay (s)', 1, '#e6550d'],
                   ['energy_j', 'round energy (J)', 1, '#8c6d31'],
                   ['epsilon', 'privacy spent, ε (largest over devices)', 1, '#636363']];
    for (const [key, label, k, color] of plots) {
      const values = data.rounds.map(r => (r[key] == null ? null : k * r[key]));  // or undefined
      line(training, `Training: ${label.split(' (')[0]} per round`, xs,
           [{name: key, color: color, values: values}], 'round (confirmed on the root)', label);
    }
  } else {
    training.textContent = 'No training rounds were confirmed on the root.';
  }
  // -- the lease table and its filters ---------------------------------------------------
  const LIMIT = 500, C = data.lease_columns, rows = data.leases;
  const col = name => C.indexOf(name);
  const q = document.getElementById('lease-q'), region = document.getElementById('lease-region');
  const state = document.getElementById('lease-state');
  const body = document.querySelector('#leases tbody');
  const count = document.getElementById('lease-count');
  for (const v of [...new Set(rows.map(r => r[col('region')]))].sort((a, b) => a - b)) {
    html('option', `region ${v}`, region).value = String(v);
  }
  for (const v of [...new Set(rows.map(r => r[col('state')]))].sort()) {
    html('option', v, state).value = v;
  }
  const searched = ['lease_id', 'seller', 'buyer', 'settle_tx', 'state_tx'].map(col);
  function showLeases() {
    const words = q.value.trim().toLowerCase().split(/\s+/).filter(w => w);
    const match = rows.filter(r => (!region.value || String(r[col('region')]) === region.value)
      && (!state.value || r[col('state')] === state.value)
      && words.every(w => searched.some(i => String(r[i]).toLowerCase().includes(w))));
    body.textContent = '';
    for (const r of match.slice(0, LIMIT)) {
      const tr = html('tr', undefined, body);
      for (const v of r.map(String)) {  // a long hash is shortened; its cell's title holds it whole
        const short = v.length > 20 && v.startsWith('0x') ? `${v.slice(0, 10)}…${v.slice(-6)}` : v;
        const td = html('td', short, tr);
        if (v.startsWith('0x')) { td.className = 'hash'; td.title = v; }
      }
      tr.dataset.lease = r[col('lease_id')];
    }
    count.textContent = `${match.length} of ${rows.length} leases`
      + (match.length > LIMIT ? ` (the first ${LIMIT} shown)` : '');
    document.body.dataset.leases = String(match.length);
  }
  for (const e of [q, region, state]) {
    e.addEventListener('input', showLeases);
    e.addEventListener('change', showLeases);
  }
  showLeases();
  // -- the violation table's filter ------------------------------------------------------
  const vq = document.getElementById('violation-q');
  if (vq) vq.addEventListener('input', function () {
    const w = vq.value.trim().toLowerCase();
    for (const tr of document.querySelectorAll('#violations tbody tr')) {
      tr.hidden = !!w && !tr.textContent.toLowerCase().includes(w);
    }
  });
  document.body.dataset.charts = String(charts);
})();
"""
