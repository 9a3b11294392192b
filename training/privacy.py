"""Differential privacy from the uplink channel's own noise.

The mechanism. Each device clips every example's uplinked activation to L2 norm
``C`` and sends it as an analog signal whose energy is spread over its ``d``
values (scaled so the whole clipped vector uses the symbol budget: per-symbol
power P). The receiver's noise has power N per symbol, so after scaling back the
activation carries Gaussian noise of standard deviation ``C / sqrt(d * snr)``
per value, with ``snr = P / N``. That is a Gaussian mechanism of sensitivity C
(add/remove one example) with noise multiplier::

    z = 1 / sqrt(d * snr)

No artificial noise is added: a higher SNR means less noise and a larger epsilon.

The accountant. Rényi DP of the sampled Gaussian mechanism (Mironov, Talwar and
Zhang, 2019) at a grid of orders, composed over rounds by addition, converted
to (epsilon, delta) with the conversion of Balle et al. (2020) — the same
analysis opacus uses, so the two agree (a test checks it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

from .errors import TrainingConfigError

__all__ = [
    "DEFAULT_ORDERS",
    "RdpAccountant",
    "noise_multiplier_from_snr",
    "rdp_sampled_gaussian",
    "uplink_noise_std",
]

#: the orders opacus uses by default
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
)


def noise_multiplier_from_snr(snr: float, values: int) -> float:
    """z of the channel mechanism for one clipped vector of ``values`` analog symbols."""
    if snr <= 0 or values <= 0:
        raise TrainingConfigError(f"snr and values must be > 0 (got {snr}, {values})")
    return 1.0 / math.sqrt(values * snr)


def _log_add(a: float, b: float) -> float:
    lo, hi = min(a, b), max(a, b)
    if lo == -math.inf:
        return hi
    return math.log1p(math.exp(lo - hi)) + hi


def _log_sub(a: float, b: float) -> float:
    if b == -math.inf:
        return a
    if a == b:
        return -math.inf
    try:
        return math.log(math.expm1(a - b)) + b
    except OverflowError:
        return a


def _log_erfc(x: float) -> float:
    return math.log(2) + float(special.log_ndtr(-x * 2**0.5))


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    log_a = -math.inf
    for i in range(alpha + 1):
        log_coef = (
            math.log(special.binom(alpha, i)) + i * math.log(q) + (alpha - i) * math.log(1 - q)
        )
        log_a = _log_add(log_a, log_coef + (i * i - i) / (2 * sigma**2))
    return log_a


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    log_a0 = log_a1 = -math.inf
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    i = 0
    while True:
        coef = special.binom(alpha, i)
        log_coef = math.log(abs(coef))
        j = alpha - i
        log_t0 = log_coef + i * math.log(q) + j * math.log(1 - q)
        log_t1 = log_coef + j * math.log(q) + i * math.log(1 - q)
        log_e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma))
        log_e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * sigma**2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma**2) + log_e1
        if coef > 0:
            log_a0, log_a1 = _log_add(log_a0, log_s0), _log_add(log_a1, log_s1)
        else:
            log_a0, log_a1 = _log_sub(log_a0, log_s0), _log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < -30:
            return _log_add(log_a0, log_a1)


def rdp_sampled_gaussian(q: float, noise_multiplier: float, order: float) -> float:
    """RDP at ``order`` of one step of the Gaussian mechanism with sampling rate q."""
    if not 0 <= q <= 1:
        raise TrainingConfigError(f"sampling rate must be in [0, 1], got {q}")
    if q == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    if q == 1.0:
        return order / (2 * noise_multiplier**2)
    if float(order).is_integer():
        log_a = _log_a_int(q, noise_multiplier, int(order))
    else:
        log_a = _log_a_frac(q, noise_multiplier, order)
    return log_a / (order - 1)


class RdpAccountant:
    """Composes sampled-Gaussian steps; :meth:`epsilon` converts to (epsilon, delta)."""

    def __init__(self, orders: Sequence[float] = DEFAULT_ORDERS) -> None:
        self.orders = np.array(orders, dtype=float)
        self.rdp = np.zeros_like(self.orders)
        self.steps = 0

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """Account for ``steps`` applications of the mechanism."""
        per_step = np.array(
            [rdp_sampled_gaussian(sample_rate, noise_multiplier, a) for a in self.orders]
        )
        self.rdp = self.rdp + steps * per_step
        self.steps += steps

    def epsilon(self, delta: float) -> float:
        if not 0 < delta < 1:
            raise TrainingConfigError(f"delta must be in (0, 1), got {delta}")
        if self.steps == 0:
            return 0.0
        orders = self.orders
        with np.errstate(invalid="ignore", over="ignore"):
            eps = (
                self.rdp
                - (math.log(delta) + np.log(orders)) / (orders - 1)
                + np.log((orders - 1) / orders)
            )
        if np.isnan(eps).all():
            return math.inf
        return float(np.nanmin(eps))


def uplink_noise_std(snr: float, clip_norm: float, values: int) -> float:
    """Per-value noise std that the channel adds to a clipped activation of ``values``."""
    return clip_norm * noise_multiplier_from_snr(snr, values)
