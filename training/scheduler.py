"""Online device selection and bandwidth split: Lyapunov drift-plus-penalty.

A virtual queue tracks how far the rounds' delays run over the long-term
budget ``D_avg``::

    Q(t+1) = max(Q(t) + D(t) - D_avg, 0)

Each round the scheduler picks the devices S and their bandwidth shares
(summing to at most the bandwidth available) that minimise::

    V * Phi(S) + Q(t) * D(S)

``Phi(S) = N / sum_{k in S} n_k * rho_k`` is the convergence-bound term of FedAvg
(the variance term shrinks with the data that takes part; ``rho_k =
snr_k / (1 + snr_k)`` discounts devices whose uplink is noisy), so it falls as
more and better devices take part. ``D(S)`` is the slowest chosen device's
compute time plus upload time, with the bandwidth split so that all chosen
devices finish together (the minimum possible ``D(S)`` for that S).

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

__all__ = ["LyapunovScheduler", "Schedule", "SchedulerConfig", "min_bandwidth_hz"]


@dataclass(frozen=True)
class SchedulerConfig:
    """Drift-plus-penalty weights and the per-round work of a device."""

    v: float
    delay_budget_s: float
    upload_bits: float
    compute_flops: float
    min_devices: int = 1
    max_devices: int | None = None

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


@dataclass(frozen=True)
class Schedule:
    """One round's decision: who takes part and how much bandwidth each gets."""

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
        out[ok] = a[ok] / x
    out[rate <= 0] = 0.0
    return out


class LyapunovScheduler:
    """Picks devices and bandwidth each round; call :meth:`observe` with the real delay."""

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self.queue = 0.0
        self.history: list[Schedule] = []

    def _delay_for(
        self, chosen: np.ndarray, a: np.ndarray, compute_s: np.ndarray, bandwidth_hz: float
    ) -> tuple[float, np.ndarray]:
        """Smallest common finish time T for ``chosen`` and the bandwidth that achieves it."""
        bits = self.config.upload_bits
        cmp = compute_s[chosen]
        aa = a[chosen]
        lo = float(cmp.max())
        # at T the rate needed is bits / (T - compute); infinite bandwidth gives a/ln2
        hi = float((cmp + bits * math.log(2) / aa).max()) * 2 + 1e-9
        need = min_bandwidth_hz(bits / np.maximum(hi - cmp, 1e-12), aa)
        while need.sum() > bandwidth_hz:  # widen until feasible
            hi *= 2
            need = min_bandwidth_hz(bits / np.maximum(hi - cmp, 1e-12), aa)
            if hi > 1e9:
                return math.inf, need
        for _ in range(60):
            mid = (lo + hi) / 2
            need_mid = min_bandwidth_hz(bits / np.maximum(mid - cmp, 1e-12), aa)
            if need_mid.sum() <= bandwidth_hz:
                hi, need = mid, need_mid
            else:
                lo = mid
        return hi, need

    def decide(
        self,
        available: Iterable[int],
        examples: Sequence[int],
        gain_over_noise_hz: Sequence[float] | np.ndarray,
        flops_per_s: Sequence[float],
        bandwidth_hz: float,
    ) -> Schedule:
        """Choose among ``available`` devices.

        ``gain_over_noise_hz[k] = P_k g_k / N0`` (so ``snr = that / bandwidth``),
        ``flops_per_s[k]`` the device's speed; all indexed by device id.
        """
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
        limit = min(len(ids), cfg.max_devices or len(ids))
        best: Schedule | None = None
        for m in range(cfg.min_devices, limit + 1):
            share = bandwidth_hz / m
            solo = compute_s[ids] + cfg.upload_bits / (share * np.log2(1 + a[ids] / share))
            chosen = ids[np.argsort(solo, kind="stable")[:m]]
            delay, need = self._delay_for(chosen, a, compute_s, bandwidth_hz)
            if not math.isfinite(delay):
                continue
            snr = a[chosen] / np.maximum(need, 1e-9)
            rho = snr / (1 + snr)
            penalty = total / float((n[chosen] * rho).sum())
            objective = cfg.v * penalty + self.queue * delay
            if best is None or objective < best.objective:
                best = Schedule(
                    tuple(int(k) for k in chosen),
                    {int(k): float(b) for k, b in zip(chosen, need, strict=True)},
                    delay,
                    penalty,
                    self.queue,
                    objective,
                )
        if best is None:
            raise TrainingConfigError("no device can upload its update with this bandwidth")
        self.history.append(best)
        return best

    def observe(self, delay_s: float) -> None:
        """Update the virtual queue with the round's realised delay."""
        self.queue = max(self.queue + delay_s - self.config.delay_budget_s, 0.0)
