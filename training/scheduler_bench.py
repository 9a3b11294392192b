"""``bench training``'s ``scheduler``: the per-round cap and the O(1/V) optimality gap.

Drift-plus-penalty promises (Neely, "Stochastic Network Optimization", 2010, ch. 4)
that, with i.i.d. channel states, the time-average penalty is within ``B / V`` of
the best any policy can reach under the average-delay budget, at a backlog
``O(V)``. That best is the optimum of a static problem: over *stationary
randomised* policies (in each channel state, a probability over device sets),

    minimise   E[Phi(S(w))]   subject to   E[D(S(w))] <= D_avg,  D(S(w)) <= D_max

an LP in the probabilities. With the states drawn from a fixed sample of N
states, its dual is one-dimensional and exact (LP duality)::

    opt = max_{lambda >= 0}  mean_w  min_S [ Phi_w(S) + lambda (D_w(S) - D_avg) ]

so a bisection on lambda finds it once every ``Phi_w(S)`` and ``D_w(S)`` is known,
which on a small cell (8 devices, 255 sets) a brute force over all subsets gives.
The test checks it against scipy's LP solver.

The runs draw their states from that sample, each block of N rounds a fresh
permutation of it (so every block sees exactly the sample's distribution). The
queue settles near ``lambda* V`` with a time constant proportional to V, so each
run first lets it settle for at least ``settle_rounds_per_v * V`` rounds (and
``burn_in_blocks`` blocks), then averages ``window_blocks`` blocks: ``rounds >> V``
(20,480 rounds settle V = 100). Averaging before the queue has settled would
credit a policy with the delay it has not yet paid for: the time-average delay
runs over the budget and the penalty falls below the optimum (at V = 100 over
7,680 rounds after 2,560, the gap read -0.03). Two policies run on the same states:

- ``scheduler``: :class:`training.scheduler.LyapunovScheduler` itself, its
  candidate sets computed once per state by :meth:`~LyapunovScheduler.options`
  (they do not depend on Q or V) and its choice by :meth:`~LyapunovScheduler.choose`;
- ``exact``: the exact per-slot drift-plus-penalty minimiser over every subset,
  the policy the theorem is about.

``optimality_gap`` is a policy's time-average penalty minus ``opt``; it can dip
below 0 by the delay the window ran over budget. ``lagrangian_gap`` adds
``lambda* (mean delay - D_avg)``: over whole blocks it is >= 0 for any policy
(each state's ``Phi + lambda* (D - D_avg)`` is at least its minimum, whose mean
is ``opt``), so it isolates the suboptimality from the window's delay slack.
``scheduler_floor`` is the same LP restricted to the scheduler's candidate sets:
what its heuristic search gives up however large V is.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .channel import DeviceProfile
from .config import ChannelConfig
from .scheduler import LyapunovScheduler, SchedulerConfig, common_finish

__all__ = [
    "BENCH_VS",
    "Cell",
    "SubsetTable",
    "bench_scheduler",
    "make_cell",
    "run_policy",
    "static_optimum",
    "subset_table",
]

BENCH_VS = (0.1, 1.0, 10.0, 100.0)


@dataclass(frozen=True)
class Cell:
    """A small cell: its devices, their mean channels, and the scheduler's settings."""

    profiles: tuple[DeviceProfile, ...]
    mean_gain_over_noise_hz: np.ndarray  # P g / N0 without fading, per device
    bandwidth_hz: float
    config: SchedulerConfig

    @property
    def examples(self) -> list[int]:
        return [p.examples for p in self.profiles]

    @property
    def flops_per_s(self) -> list[float]:
        return [p.flops_per_s for p in self.profiles]


def make_cell(
    devices: int = 8,
    seed: int = 0,
    delay_budget_s: float = 0.5,
    max_round_delay_s: float | None = None,
    bandwidth_hz: float = 20e6,
) -> Cell:
    """Devices 30-250 m out, 5-30 GFLOP/s, 50-400 examples (the tests' cell)."""
    rng = np.random.default_rng(seed)
    profiles = tuple(
        DeviceProfile(distance_m=float(d), flops_per_s=float(f), examples=int(e))
        for d, f, e in zip(
            rng.uniform(30, 250, devices),
            rng.uniform(5e9, 3e10, devices),
            rng.integers(50, 400, devices),
            strict=True,
        )
    )
    c = ChannelConfig()
    d = np.array([p.distance_m for p in profiles])
    loss_db = c.reference_loss_db + 10 * c.path_loss_exponent * np.log10(d)
    n0 = 10 ** ((c.noise_psd_dbm_per_hz - 30) / 10)
    power = np.array([p.tx_power_w for p in profiles])
    config = SchedulerConfig(
        v=1.0,
        delay_budget_s=delay_budget_s,
        upload_bits=8e6,
        compute_flops=2e9,
        max_round_delay_s=max_round_delay_s,
    )
    return Cell(profiles, power * 10 ** (-loss_db / 10) / n0, bandwidth_hz, config)


def draw_states(cell: Cell, states: int, rng: np.random.Generator) -> np.ndarray:
    """``states`` x devices of ``P g |h|^2 / N0``, ``|h|^2 ~ Exp(1)``: the stationary law
    of :class:`training.channel.ChannelState`'s Rayleigh fading."""
    fade = rng.exponential(1.0, (states, len(cell.profiles)))
    return fade * cell.mean_gain_over_noise_hz


@dataclass(frozen=True)
class SubsetTable:
    """Every non-empty device set in every state: its penalty and its (least) delay."""

    masks: np.ndarray  # (M, K) bool, M = 2^K - 1
    penalty: np.ndarray  # (N, M)
    delay_s: np.ndarray  # (N, M), inf where the bandwidth cannot carry the set

    def feasible(self, cap_s: float) -> list[np.ndarray]:
        """Per state, the indices of the sets that fit under the cap."""
        return [np.flatnonzero(row <= cap_s) for row in self.delay_s]


def subset_table(cell: Cell, gains: np.ndarray) -> SubsetTable:
    """The brute force: :func:`common_finish` and Phi for all ``2^K - 1`` sets at once."""
    k = len(cell.profiles)
    masks = ((np.arange(1, 2**k)[:, None] >> np.arange(k)) & 1).astype(bool)
    cfg = cell.config
    compute_s = cfg.compute_flops / np.array(cell.flops_per_s)
    n = np.array(cell.examples, dtype=float)
    cmp = np.where(masks[None], compute_s, np.nan)  # (1, M, K) -> broadcast per state
    cmp = np.broadcast_to(cmp, (len(gains), *masks.shape))
    t, need = common_finish(cfg.upload_bits, cmp, gains[:, None, :], cell.bandwidth_hz)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(masks[None], gains[:, None, :] / np.maximum(need, 1e-9), 0.0)
        weight = (n * snr / (1 + snr) * masks[None]).sum(axis=-1)
        phi = np.where(np.isfinite(t), n.sum() / weight, np.inf)
    return SubsetTable(masks, phi, t)


def static_optimum(
    penalties: Sequence[np.ndarray], delays: Sequence[np.ndarray], budget_s: float
) -> tuple[float, float]:
    """(opt, lambda*) of the LP above, each state's allowed sets given by its arrays."""

    def pick(lam: float) -> tuple[float, float]:
        value = delay = 0.0
        for p, d in zip(penalties, delays, strict=True):
            j = int(np.argmin(p + lam * d))
            value += p[j] + lam * (d[j] - budget_s)
            delay += d[j]
        return value / len(penalties), delay / len(penalties)

    value, delay = pick(0.0)
    if delay <= budget_s:
        return value, 0.0
    if pick(1e9)[1] > budget_s:
        raise ValueError("no stationary policy meets the delay budget on these states")
    lo, hi = 0.0, 1.0
    while pick(hi)[1] > budget_s:
        lo, hi = hi, hi * 2
    for _ in range(60):  # E[D] falls as lambda grows: find where it crosses the budget
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if pick(mid)[1] > budget_s else (lo, mid)
    # g is concave and piecewise linear; its maximum is at the crossing
    return max(pick(lo)[0], pick(hi)[0]), hi


def run_policy(
    choose: Any,
    order: np.ndarray,
    budget_s: float,
    burn_in: int,
) -> dict[str, float]:
    """Run ``choose(state, queue) -> (penalty, delay_s)`` over ``order``; averages after
    ``burn_in`` rounds."""
    queue = 0.0
    pen, dly, qs = [], [], []
    for t, w in enumerate(order):
        p, d = choose(int(w), queue)
        if t >= burn_in:
            pen.append(p)
            dly.append(d)
            qs.append(queue)
        queue = max(queue + d - budget_s, 0.0)
    return {
        "mean_penalty": float(np.mean(pen)),
        "mean_delay_s": float(np.mean(dly)),
        "max_delay_s": float(np.max(dly)),
        "mean_backlog": float(np.mean(qs)),
    }


def bench_scheduler(
    devices: int = 8,
    states: int = 256,
    window_blocks: int = 30,
    burn_in_blocks: int = 10,
    settle_rounds_per_v: float = 200.0,
    vs: Sequence[float] = BENCH_VS,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``scheduler`` figures of ``bench training --json`` (see the module docstring)."""
    start = time.perf_counter()
    cell = make_cell(devices, seed)
    cfg = cell.config
    rng = np.random.default_rng([seed, 1])
    gains, dropped = np.empty((0, devices)), 0
    while len(gains) < states:  # keep states where at least one device fits the cap
        draw = draw_states(cell, states - len(gains), rng)
        fits = subset_table(cell, draw).delay_s.min(axis=1) <= cfg.round_cap_s
        dropped += int((~fits).sum())
        gains = np.vstack([gains, draw[fits]])
    table = subset_table(cell, gains)
    feasible = table.feasible(cfg.round_cap_s)
    ex_pen = [table.penalty[w, f] for w, f in enumerate(feasible)]
    ex_del = [table.delay_s[w, f] for w, f in enumerate(feasible)]
    options = [
        LyapunovScheduler(cfg).options(
            range(devices), cell.examples, g, cell.flops_per_s, cell.bandwidth_hz
        )
        for g in gains
    ]
    sc_pen = [np.array([o.penalty for o in opts]) for opts in options]
    sc_del = [np.array([o.delay_s for o in opts]) for opts in options]
    opt, lam = static_optimum(ex_pen, ex_del, cfg.delay_budget_s)
    floor, _ = static_optimum(sc_pen, sc_del, cfg.delay_budget_s)
    out: dict[str, dict[str, Any]] = {"scheduler": {}, "exact": {}}
    rounds: dict[str, int] = {}
    for v in vs:
        # the queue settles near lambda* V with a time constant that grows with V
        burn = max(burn_in_blocks, int(np.ceil(settle_rounds_per_v * v / states)))
        order = np.concatenate([rng.permutation(states) for _ in range(burn + window_blocks)])
        burn_in = burn * states
        rounds[str(v)] = len(order)
        scheduler = LyapunovScheduler(replace(cfg, v=v))

        def heuristic(w: int, queue: float, s: LyapunovScheduler = scheduler) -> tuple:
            s.queue = queue
            chosen = s.choose(options[w])
            return chosen.penalty, chosen.delay_s

        def exact(w: int, queue: float, v: float = v) -> tuple:
            j = int(np.argmin(v * ex_pen[w] + queue * ex_del[w]))
            return float(ex_pen[w][j]), float(ex_del[w][j])

        for name, policy in (("scheduler", heuristic), ("exact", exact)):
            r = run_policy(policy, order, cfg.delay_budget_s, burn_in)
            r["optimality_gap"] = r["mean_penalty"] - opt
            slack = r["mean_delay_s"] - cfg.delay_budget_s
            r["lagrangian_gap"] = r["optimality_gap"] + lam * slack
            out[name][str(v)] = r

    def per_v(name: str, key: str, digits: int = 5) -> dict[str, float]:
        return {v: round(r[key], digits) for v, r in out[name].items()}

    return {
        "max_round_delay_s": cfg.round_cap_s,
        "delay_budget_s": cfg.delay_budget_s,
        "optimality_gap": per_v("scheduler", "optimality_gap"),
        "lagrangian_gap": per_v("scheduler", "lagrangian_gap"),
        "backlog": per_v("scheduler", "mean_backlog", 3),
        "mean_delay_s": per_v("scheduler", "mean_delay_s", 4),
        "max_delay_s": per_v("scheduler", "max_delay_s", 4),
        "exact": {
            "optimality_gap": per_v("exact", "optimality_gap"),
            "lagrangian_gap": per_v("exact", "lagrangian_gap"),
            "backlog": per_v("exact", "mean_backlog", 3),
            "mean_delay_s": per_v("exact", "mean_delay_s", 4),
            "max_delay_s": per_v("exact", "max_delay_s", 4),
        },
        "optimum_penalty": round(opt, 6),
        "optimum_lambda": round(lam, 6),
        "scheduler_floor": round(floor - opt, 6),
        "config": {
            "devices": devices,
            "states": states,
            "states_dropped": dropped,
            "rounds": rounds,
            "averaged_rounds": window_blocks * states,
            "bandwidth_hz": cell.bandwidth_hz,
            "upload_bits": cfg.upload_bits,
            "compute_flops": cfg.compute_flops,
        },
        "time_s": round(time.perf_counter() - start, 2),
    }
