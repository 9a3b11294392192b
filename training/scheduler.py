"""Online device selection and bandwidth split: Lyapunov drift-plus-penalty.

A virtual queue tracks how far the rounds' delays run over the long-term
budget ``D_avg``::

    Q(t+1) = max(Q(t) + D(t) - D_avg, 0)

Each round the scheduler picks the devices S and their bandwidth shares
(summing to at most the bandwidth available) that minimise::

    V * Phi(S) + Q(t) * D(S)      subject to  D(S) <= D_max

``D(S)`` is the slowest chosen device's compute time plus upload time, with the
bandwidth split so that all chosen devices finish together (the minimum
possible ``D(S)`` for that S). ``D_max`` (``max_round_delay_s``, by default
``4 * D_avg``) is a hard per-round cap: without it, whenever ``Q = 0`` the
objective ignores delay and takes every device, even one in a deep fade (one
such round took 119 s against a 0.5 s budget). When no set of ``min_devices``
fits under the cap the best smaller set that fits is taken; when not even one
device fits, the round is planned with no device (``Schedule.devices == ()``)
and the caller waits for the channels to change (:meth:`ScheduledJob.run_round`
does, a coordinator simply buys nothing that slot).

The penalty is a stand-in for the convergence bound of split federated LoRA
(Wang, Zhou, Shi, Letaief, "Federated Fine-Tuning for Pre-Trained Foundation
Models Over Wireless Networks", arXiv 2407.02924). That paper bounds the
convergence gap by a term that grows as fewer devices take part in a round,
weighted over the rounds, and minimises that long-term bound under a delay
constraint with the same Lyapunov decomposition. We do not reproduce its
derived bound or constants (smoothness, gradient variance, round weights);
``Phi(S) = N / sum_{k in S} n_k * rho_k`` only keeps its shape: the
variance term of FedAvg shrinks with the data that takes part (``n_k``
examples, ``N`` in all), and ``rho_k = snr_k / (1 + snr_k)`` discounts devices
whose noisy uplink carries less signal. ``V`` trades that penalty against
delay: Neely's drift-plus-penalty theorem gives a time-average penalty within
``O(1/V)`` of the best achievable under the budget, at a backlog ``O(V)``;
:mod:`training.scheduler_bench` measures both against a brute-force optimum.

The per-round search is a heuristic, not the exact per-slot minimum: for each
count m it tries the first m devices in three orders (finish time on an equal
share, that time per example and per square root of examples:
:meth:`LyapunovScheduler.options`), so it solves at most 3K small problems instead
of ``2^K``. On the benchmark's 8-device cell that leaves 0.0003 of a 1.47 penalty
on the table against the exact search (finish time alone left 0.015).

The minimum bandwidth for a device to send R bits/s is closed-form:
``b log2(1 + a/b) = R`` with ``a = P g / N0`` gives ``b = a / x`` where
``x = -W_{-1}(-c e^{-c}) / c - 1`` and ``c = R ln 2 / a`` (Lambert W), feasible
only when ``R < a / ln 2``, the rate at infinite bandwidth.

The scheduler takes the available devices, their channels and the bandwidth it
can get as inputs, so a coordinator agent can use it to decide what to buy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import lambertw

from .errors import TrainingConfigError

__all__ = [
    "ROUND_CAP_FACTOR",
    "LyapunovScheduler",
    "Option",
    "Schedule",
    "SchedulerConfig",
    "common_finish",
    "min_bandwidth_hz",
]

ROUND_CAP_FACTOR = 4.0  # max_round_delay_s when none is given: 4 x the average budget


@dataclass(frozen=True)
class SchedulerConfig:
    """Drift-plus-penalty weights, the delay budget and cap, and a device's per-round work."""

    v: float
    delay_budget_s: float
    upload_bits: float
    compute_flops: float
    min_devices: int = 1
    max_devices: int | None = None
    max_round_delay_s: float | None = None  # None: ROUND_CAP_FACTOR x delay_budget_s

    def __post_init__(self) -> None:
        for name in ("delay_budget_s", "upload_bits", "compute_flops"):
            if getattr(self, name) <= 0:
                raise TrainingConfigError(f"SchedulerConfig.{name} must be > 0")
        if self.v < 0:
            raise TrainingConfigError(f"SchedulerConfig.v must be >= 0, got {self.v}")
        if self.min_devices < 1:
            raise TrainingConfigError("SchedulerConfig.min_devices must be >= 1")
        if self.max_devices is not None and self.max_devices < self.min_devices:
            raise TrainingConfigError("SchedulerConfig.max_devices must be >= min_devices")
        if self.max_round_delay_s is not None and not (
            self.max_round_delay_s >= self.delay_budget_s
        ):
            raise TrainingConfigError(
                f"SchedulerConfig.max_round_delay_s must be >= delay_budget_s "
                f"({self.delay_budget_s}), got {self.max_round_delay_s}: a cap below the "
                "average budget makes the budget moot; lower delay_budget_s instead"
            )

    @property
    def round_cap_s(self) -> float:
        """The per-round delay no planned round may exceed."""
        if self.max_round_delay_s is None:
            return ROUND_CAP_FACTOR * self.delay_budget_s
        return self.max_round_delay_s


@dataclass(frozen=True)
class Option:
    """A device set that fits under the cap on the current channels, with its cost."""

    devices: tuple[int, ...]
    bandwidth_hz: dict[int, float]
    delay_s: float
    penalty: float  # Phi(S)


@dataclass(frozen=True)
class Schedule:
    """One round's decision: who takes part and how much bandwidth each gets.

    ``devices == ()`` when no device can finish under the cap: nothing is trained,
    ``delay_s`` is 0 and ``penalty`` and ``objective`` are inf."""

    devices: tuple[int, ...]
    bandwidth_hz: dict[int, float]
    delay_s: float
    penalty: float  # Phi(S)
    queue: float  # Q(t) when the decision was taken
    objective: float


def min_bandwidth_hz(rate_bps: np.ndarray, a_hz: np.ndarray) -> np.ndarray:
    """Least bandwidth giving ``rate_bps`` when ``snr = a / b``; inf when unreachable."""
    rate = np.asarray(rate_bps, dtype=float)
    a = np.asarray(a_hz, dtype=float)
    c = rate * math.log(2) / a
    out = np.full(np.broadcast(rate, a).shape, np.inf)
    ok = (c > 0) & (c < 1 - 1e-12)
    if np.any(ok):
        cc = c[ok]
        x = -lambertw(-cc * np.exp(-cc), k=-1).real / cc - 1
        out[ok] = np.broadcast_to(a, out.shape)[ok] / x
    out[rate <= 0] = 0.0
    return out


def common_finish(
    bits: float,
    compute_s: np.ndarray,
    a_hz: np.ndarray,
    bandwidth_hz: float,
    iterations: int = 60,
) -> tuple[np.ndarray, np.ndarray]:
    """Smallest common finish time T of each set and the bandwidth that achieves it.

    ``compute_s`` and ``a_hz`` are ``(..., K)``; a device with ``compute_s = nan`` is
    not in the set. Returns ``T`` of shape ``(...)`` (inf where the bandwidth cannot
    carry the set) and the bandwidth ``(..., K)`` (0 off the set). Vectorised, so the
    benchmark's brute force over every subset uses the same arithmetic as a round."""
    cmp = np.asarray(compute_s, dtype=float)
    a = np.broadcast_to(np.asarray(a_hz, dtype=float), cmp.shape)
    member = ~np.isnan(cmp)
    c0 = np.where(member, cmp, 0.0)

    def need(t: np.ndarray) -> np.ndarray:
        rate = bits / np.maximum(t[..., None] - c0, 1e-12)
        return np.where(member, min_bandwidth_hz(np.where(member, rate, 0.0), a), 0.0)

    lo = np.where(member, c0, -np.inf).max(axis=-1)
    # at T the rate needed is bits / (T - compute); infinite bandwidth gives a / ln 2
    hi = np.where(member, c0 + bits * math.log(2) / a, -np.inf).max(axis=-1) * 2 + 1e-9
    fits = need(hi).sum(axis=-1) <= bandwidth_hz
    for _ in range(40):  # widen until feasible (each doubling)
        if fits.all():
            break
        hi = np.where(fits, hi, hi * 2)
        fits = need(hi).sum(axis=-1) <= bandwidth_hz
    for _ in range(iterations):
        mid = (lo + hi) / 2
        ok = need(mid).sum(axis=-1) <= bandwidth_hz
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    share = need(hi)
    return np.where(fits, hi, np.inf), share


def penalty(examples_total: float, examples: np.ndarray, snr: np.ndarray) -> float:
    """Phi(S) = N / sum n_k rho_k, rho_k = snr_k / (1 + snr_k) (see the module docstring)."""
    return examples_total / float((examples * snr / (1 + snr)).sum())


class LyapunovScheduler:
    """Picks devices and bandwidth each round; call :meth:`observe` with the real delay."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self.queue = 0.0
        self.history: list[Schedule] = []

    def options(
        self,
        available: Iterable[int],
        examples: Sequence[int],
        gain_over_noise_hz: Sequence[float] | np.ndarray,
        flops_per_s: Sequence[float],
        bandwidth_hz: float,
    ) -> list[Option]:
        """The candidate sets on these channels that fit under the cap.

        For each count m, the m devices first by three orders: the time each would take
        on an equal share, that time per example, and per square root of its examples
        (fast devices lower the delay, big ones the penalty); with none of
        ``min_devices`` or more under the cap, the smaller sets that fit (the cap
        outranks ``min_devices``). They do not depend on ``Q`` or ``V``, so a benchmark
        can compute them once per channel state."""
        if bandwidth_hz <= 0:
            raise TrainingConfigError(f"bandwidth_hz must be > 0, got {bandwidth_hz}")
        cfg = self.config
        ids = np.array(sorted(available), dtype=int)
        if len(ids) < cfg.min_devices:
            raise TrainingConfigError(
                f"{len(ids)} devices available but min_devices is {cfg.min_devices}"
            )
        a = np.asarray(gain_over_noise_hz, dtype=float)
        compute_s = cfg.compute_flops / np.asarray(flops_per_s, dtype=float)
        n = np.asarray(examples, dtype=float)
        total = float(n.sum())
        size = np.maximum(n[ids], 1.0)
        limit = min(len(ids), cfg.max_devices or len(ids))
        sets: dict[tuple[int, ...], None] = {}  # ordered, no repeats
        for m in range(1, limit + 1):
            share = bandwidth_hz / m
            solo = compute_s[ids] + cfg.upload_bits / (share * np.log2(1 + a[ids] / share))
            for order in (solo, solo / np.sqrt(size), solo / size):
                first = ids[np.argsort(order, kind="stable")[:m]]
                sets[tuple(sorted(int(k) for k in first))] = None
        masks = np.array([np.isin(ids, key) for key in sets])
        # every candidate's common finish time in one vectorised bisection
        t, need = common_finish(
            cfg.upload_bits, np.where(masks, compute_s[ids], np.nan), a[ids], bandwidth_hz
        )
        found: list[Option] = []
        for key, mask, delay, bw in zip(sets, masks, t.tolist(), need, strict=True):
            if not delay <= cfg.round_cap_s:
                continue
            b = bw[mask]
            found.append(
                Option(
                    key,
                    {k: float(x) for k, x in zip(key, b, strict=True)},
                    delay,
                    penalty(total, n[list(key)], a[list(key)] / np.maximum(b, 1e-9)),
                )
            )
        enough = [o for o in found if len(o.devices) >= cfg.min_devices]
        return enough or found

    def choose(self, options: Sequence[Option]) -> Schedule:
        """The option minimising ``V * Phi + Q * D`` at the current queue (none: no device)."""
        cfg = self.config
        best: Schedule | None = None
        for o in options:
            objective = cfg.v * o.penalty + self.queue * o.delay_s
            if best is None or objective < best.objective:
                best = Schedule(
                    o.devices, o.bandwidth_hz, o.delay_s, o.penalty, self.queue, objective
                )
        if best is None:
            return Schedule((), {}, 0.0, math.inf, self.queue, math.inf)
        return best

    def decide(
        self,
        available: Iterable[int],
        examples: Sequence[int],
        gain_over_noise_hz: Sequence[float] | np.ndarray,
        flops_per_s: Sequence[float],
        bandwidth_hz: float,
    ) -> Schedule:
        """Choose among ``available`` devices; no planned delay exceeds the cap.

        ``gain_over_noise_hz[k] = P_k g_k / N0`` (so ``snr = that / bandwidth``),
        ``flops_per_s[k]`` the device's speed; all indexed by device id."""
        schedule = self.choose(
            self.options(available, examples, gain_over_noise_hz, flops_per_s, bandwidth_hz)
        )
        self.history.append(schedule)
        return schedule

    def observe(self, delay_s: float) -> None:
        """Update the virtual queue with the round's realised delay."""
        self.queue = max(self.queue + delay_s - self.config.delay_budget_s, 0.0)
