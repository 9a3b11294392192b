"""Differential privacy from the uplink channel's own noise, with power control.

The mechanism (analog, uncoded uplink; Liu and Simeone, "Privacy for free:
wireless federated learning via uncoded transmission with adaptive power
control", IEEE JSAC 2021, arXiv 2006.05459; Koda, Yamamoto, Nishio and Morikura,
"Differentially private AirComp federated learning with power adaptation",
PIMRC 2020; Sonee and Rini, "Efficient federated learning over multiple access
channel with differential privacy constraints", 2020). A device clips each
example's uplinked activation to L2 norm ``C`` and sends its ``d`` values as
analog symbols at transmit power ``p``; the receiver's noise (power N per
symbol) is all the noise there is. Scaled back, each value carries Gaussian
noise of standard deviation ``z C`` with noise multiplier::

    z = 1 / sqrt(d * snr),    snr = p g / N    (received SNR per symbol)

Power control (Liu and Simeone's adaptive power control): a device lowers ``p``
so that ``z`` reaches a target, ``p = min(P_max, N / (g d z_target^2))``; a device
whose channel is too weak for the target at full power sends at ``P_max`` and is
noisier (more private) than asked. The received SNR this costs is reported.

Neighbouring relation: replace one example of a device's data. Each example's
activation is released on its own (not summed with others), so replacing it
moves the release by at most ``2C`` (both are clipped to C): a Gaussian
mechanism of sensitivity ``2C`` and ratio ``2 / z``. A step samples a batch
independently of the data (each example in it with probability q); given who
was sampled (which, released, only helps the receiver) the output differs only
when the example was, so the step's Rényi DP at order a is exactly::

    eps(a) = log(1 - q + q exp((a - 1) a mu^2 / 2)) / (a - 1),   mu = 2 / z

(the subsampling bound for mechanisms whose output without the example is
disjoint from its output with it; cf. Wang, Balle and Kasiviswanathan,
"Subsampled Rényi differential privacy", AISTATS 2019). Several values released
per example in one step (tokens and, when noisy, the pooled gradient) add their
``mu^2``. Over-the-air aggregation (Koda et al.; Liu and Simeone): K devices send
their clipped parameter updates at once, the channel adds them and one noise draw
of std ``z C_u`` lands on the sum; replacing one example changes one device's
update by at most ``2 C_u``: a Gaussian mechanism, ``eps(a) = a (2/z)^2 / 2``.

Composition over steps and rounds adds RDP (Mironov, "Rényi differential
privacy", CSF 2017); (epsilon, delta) comes from the conversion of Balle et al.
(2020), as opacus does. The sampled Gaussian *sum* under add/remove (Mironov,
Talwar and Zhang 2019; Abadi et al.'s moments accountant) is kept as
:func:`rdp_sampled_gaussian`: it is not the released mechanism here (the old
accounting used it), and tests check it, the Gaussian and the conversion
against opacus. opacus has no accountant for the per-example release, and for
what it has the numbers are the same as these, while importing it costs 2.5 s
per process; so the run time does not import it (it stays a test dependency).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

from .channel import power_control
from .config import FederatedConfig
from .errors import TrainingConfigError

if TYPE_CHECKING:  # the trainer needs torch; the accountant does not
    from .federated import FederatedTrainer

__all__ = [
    "DEFAULT_ORDERS",
    "REPLACE_ONE_SENSITIVITY",
    "DevicePrivacy",
    "RdpAccountant",
    "UplinkPrivacy",
    "calibrate_noise_multiplier",
    "epsilon_from_rdp",
    "noise_multiplier_from_snr",
    "rdp_gaussian",
    "rdp_per_example_release",
    "rdp_sampled_gaussian",
    "snr_for_noise_multiplier",
    "uplink_noise_std",
]

#: the orders opacus uses by default
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
)

#: replace-one: one example's clipped release moves by at most twice the clip norm
REPLACE_ONE_SENSITIVITY = 2.0


def noise_multiplier_from_snr(snr: float, values: int) -> float:
    """z of the channel mechanism for one clipped vector of ``values`` analog symbols."""
    if snr <= 0 or values <= 0:
        raise TrainingConfigError(f"snr and values must be > 0 (got {snr}, {values})")
    return 1.0 / math.sqrt(values * snr)


def snr_for_noise_multiplier(noise_multiplier: float, values: int) -> float:
    """The received SNR per symbol at which the channel's noise multiplier is ``z``."""
    if noise_multiplier <= 0 or values <= 0:
        raise TrainingConfigError(
            f"noise multiplier and values must be > 0 (got {noise_multiplier}, {values})"
        )
    return 1.0 / (values * noise_multiplier**2)


def uplink_noise_std(snr: float, clip_norm: float, values: int) -> float:
    """Per-value noise std that the channel adds to a clipped activation of ``values``."""
    return clip_norm * noise_multiplier_from_snr(snr, values)


def _orders(orders: Sequence[float] | np.ndarray) -> np.ndarray:
    return np.asarray(orders, dtype=float)


def rdp_gaussian(mu: float, orders: Sequence[float] | np.ndarray = DEFAULT_ORDERS) -> np.ndarray:
    """RDP of a Gaussian mechanism whose sensitivity is ``mu`` noise stds."""
    return _orders(orders) * mu**2 / 2


def rdp_per_example_release(
    q: float, mu: float, orders: Sequence[float] | np.ndarray = DEFAULT_ORDERS
) -> np.ndarray:
    """RDP of one step that releases each sampled example's own noisy value (sensitivity
    ``mu`` noise stds), the example sampled with probability ``q`` (module docstring)."""
    if not 0 <= q <= 1:
        raise TrainingConfigError(f"sampling rate must be in [0, 1], got {q}")
    a = _orders(orders)
    if q == 0 or mu == 0:
        return np.zeros_like(a)
    if not math.isfinite(mu):
        return np.full_like(a, math.inf)
    exponent = (a - 1) * a * mu**2 / 2
    if q == 1:
        return exponent / (a - 1)
    return np.logaddexp(math.log1p(-q), math.log(q) + exponent) / (a - 1)


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
    """RDP at ``order`` of one step of the sampled Gaussian *sum* (add/remove, sensitivity
    C, Poisson rate q): DP-SGD's mechanism, opacus's analysis."""
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


def epsilon_from_rdp(rdp: np.ndarray, orders: Sequence[float] | np.ndarray, delta: float) -> float:
    """(epsilon, delta) from RDP at ``orders`` (Balle et al. 2020, as opacus)."""
    if not 0 < delta < 1:
        raise TrainingConfigError(f"delta must be in (0, 1), got {delta}")
    a = _orders(orders)
    with np.errstate(invalid="ignore", over="ignore"):
        eps = rdp - (math.log(delta) + np.log(a)) / (a - 1) + np.log((a - 1) / a)
    if np.isnan(eps).all():
        return math.inf
    return float(np.nanmin(eps))


class RdpAccountant:
    """Adds up the RDP of every step; :meth:`epsilon` converts to (epsilon, delta)."""

    def __init__(self, orders: Sequence[float] = DEFAULT_ORDERS) -> None:
        self.orders = _orders(orders)
        self.rdp = np.zeros_like(self.orders)
        self.steps = 0

    def add(self, rdp: np.ndarray, steps: int = 1) -> None:
        """Account for ``steps`` mechanisms of RDP ``rdp`` (at this accountant's orders)."""
        self.rdp = self.rdp + steps * rdp
        self.steps += steps

    def step(self, noise_multiplier: float, sample_rate: float, steps: int = 1) -> None:
        """``steps`` sampled Gaussian sums (add/remove; see :func:`rdp_sampled_gaussian`)."""
        per_step = np.array(
            [rdp_sampled_gaussian(sample_rate, noise_multiplier, a) for a in self.orders]
        )
        self.add(per_step, steps)

    def step_release(self, mu: float, sample_rate: float, steps: int = 1) -> None:
        """``steps`` per-example releases of sensitivity ``mu`` noise stds (replace-one)."""
        self.add(rdp_per_example_release(sample_rate, mu, self.orders), steps)

    def step_sum(self, mu: float, steps: int = 1) -> None:
        """``steps`` Gaussian releases of sensitivity ``mu`` noise stds (an over-the-air sum)."""
        self.add(rdp_gaussian(mu, self.orders), steps)

    def epsilon(self, delta: float) -> float:
        if self.steps == 0:
            if not 0 < delta < 1:
                raise TrainingConfigError(f"delta must be in (0, 1), got {delta}")
            return 0.0
        return epsilon_from_rdp(self.rdp, self.orders, delta)


def calibrate_noise_multiplier(
    target_epsilon: float,
    delta: float,
    rdp_of: Callable[[float], np.ndarray],
    orders: Sequence[float] = DEFAULT_ORDERS,
) -> float:
    """The smallest noise multiplier z (to 0.1 %) whose planned RDP ``rdp_of(z)`` stays
    within ``target_epsilon`` at ``delta``: the least noise, so the most accuracy."""
    if not target_epsilon > 0:
        raise TrainingConfigError(f"target epsilon must be > 0, got {target_epsilon}")

    def eps(z: float) -> float:
        return epsilon_from_rdp(rdp_of(z), orders, delta)

    lo, hi = 1e-3, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > 1e6:
            raise TrainingConfigError(
                f"target epsilon {target_epsilon} is out of reach (z > 1e6); raise it"
            )
    while hi / lo > 1.001:
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if eps(mid) <= target_epsilon else (mid, hi)
    return hi


@dataclass(frozen=True)
class DevicePrivacy:
    """One device's uplink in one round: its noise and what power control cost."""

    noise_multiplier: float  # z of its tokens (noise std over the clip norm)
    token_noise_std: float
    gradient_noise_std: float  # 0: the pooled gradients went up noise-free
    power_fraction: float  # of its maximum transmit power, for the tokens
    received_snr_db: float  # per symbol, of its tokens at the server


class UplinkPrivacy:
    """Per-device noise and accounting of a job's uplinks (module docstring).

    Each round :meth:`round` takes every scheduled device's full-power SNR, applies power
    control towards the target, returns the noise to add and accounts what it releases:
    ``local_steps`` per-example releases (tokens, and pooled gradients when clipped) at
    sampling rate batch / examples, and one over-the-air sum when that is on.
    """

    def __init__(
        self,
        config: FederatedConfig,
        examples: Sequence[int],
        token_values: int,
        gradient_values: int,
        update_values: int,
    ) -> None:
        self.config = config
        self.privacy = config.privacy
        self.token_values, self.gradient_values = token_values, gradient_values
        self.update_values = update_values
        self.sample_rates = [min(1.0, config.batch_size / max(1, n)) for n in examples]
        self.accountants = [RdpAccountant() for _ in examples]
        self.released = [False] * len(examples)
        p = self.privacy
        if p.target_epsilon > 0:
            self.targets = [self.calibrate(q) for q in self.sample_rates]
        else:
            self.targets = [p.target_noise_multiplier] * len(examples)

    def _releases(self) -> int:
        """Noisy values released per example per step: tokens, and gradients if clipped."""
        return 1 + (self.privacy.gradient_clip_norm > 0)

    def calibrate(self, sample_rate: float) -> float:
        """The least z meeting ``target_epsilon`` if the device trains in every round."""
        cfg, releases = self.config, self._releases()
        over_the_air = self.privacy.over_the_air_clip_norm > 0

        def planned(z: float) -> np.ndarray:
            mu = REPLACE_ONE_SENSITIVITY / z
            per_round = cfg.local_steps * rdp_per_example_release(
                sample_rate, mu * math.sqrt(releases)
            )
            if over_the_air:
                per_round = per_round + rdp_gaussian(mu)
            return cfg.rounds * per_round

        return calibrate_noise_multiplier(self.privacy.target_epsilon, self.privacy.delta, planned)

    def _snr(self, full_snr: float, z_target: float, values: int) -> tuple[float, float]:
        max_snr = snr_for_noise_multiplier(z_target, values) if z_target > 0 else 0.0
        return power_control(full_snr, max_snr)

    def round(
        self, devices: Sequence[int], full_power_snr: Mapping[int, float]
    ) -> tuple[dict[int, DevicePrivacy], float]:
        """Each device's noise and power this round, and the std of the over-the-air sum's
        noise (0 when off); accounts the round."""
        cfg, p = self.config, self.privacy
        out: dict[int, DevicePrivacy] = {}
        ota_z = 0.0
        for k in devices:
            fraction, snr = self._snr(full_power_snr[k], self.targets[k], self.token_values)
            z = noise_multiplier_from_snr(snr, self.token_values)
            mu2 = (REPLACE_ONE_SENSITIVITY / z) ** 2
            gradient_std = 0.0
            if p.gradient_clip_norm > 0:
                _, g_snr = self._snr(full_power_snr[k], self.targets[k], self.gradient_values)
                z_g = noise_multiplier_from_snr(g_snr, self.gradient_values)
                gradient_std = p.gradient_clip_norm * z_g
                mu2 += (REPLACE_ONE_SENSITIVITY / z_g) ** 2
            if cfg.clip_norm > 0:
                self.accountants[k].step_release(
                    math.sqrt(mu2), self.sample_rates[k], cfg.local_steps
                )
                self.released[k] = True
            if p.over_the_air_clip_norm > 0:  # the weakest device limits the common amplitude
                _, u_snr = self._snr(full_power_snr[k], self.targets[k], self.update_values)
                ota_z = max(ota_z, noise_multiplier_from_snr(u_snr, self.update_values))
            out[k] = DevicePrivacy(
                z, cfg.clip_norm * z, gradient_std, fraction, 10 * math.log10(snr)
            )
        if ota_z > 0:
            for k in devices:
                self.accountants[k].step_sum(REPLACE_ONE_SENSITIVITY / ota_z)
        return out, p.over_the_air_clip_norm * ota_z

    def apply(
        self, trainer: FederatedTrainer, devices: Sequence[int], full_power_snr: Mapping[int, float]
    ) -> dict[int, DevicePrivacy]:
        """:meth:`round`, and set its noise on ``trainer`` for the round it trains next."""
        uplinks, ota_std = self.round(devices, full_power_snr)
        n = len(self.accountants)
        none = DevicePrivacy(0.0, 0.0, 0.0, 0.0, -math.inf)
        trainer.noise_std = [uplinks.get(k, none).token_noise_std for k in range(n)]
        trainer.gradient_noise_std = [uplinks.get(k, none).gradient_noise_std for k in range(n)]
        trainer.over_the_air_noise_std = ota_std
        return uplinks

    def epsilon(self, delta: float | None = None) -> float:
        """The largest epsilon over devices so far, at ``delta`` (default: the config's),
        of what was accounted (inf when tokens are not clipped: the noise bounds nothing)."""
        if self.config.clip_norm <= 0:
            return math.inf
        d = self.privacy.delta if delta is None else delta
        return max((a.epsilon(d) for a in self.accountants), default=0.0)

    def summary(self) -> dict[str, object]:
        """What a run's ``summary.json`` says of its privacy."""
        eps = self.epsilon()
        return {
            "epsilon": round(eps, 4) if math.isfinite(eps) else None,  # None: unbounded
            "delta": self.privacy.delta,
            "target_epsilon": self.privacy.target_epsilon or None,
            "target_noise_multiplier": self.privacy.target_noise_multiplier or None,
            "neighbouring": "replace one example (per-example release, sensitivity 2 x clip)",
            "outside_epsilon": self.outside_epsilon(),
        }

    def outside_epsilon(self) -> list[str]:
        """The uplinks this configuration sends noise-free, which no epsilon covers."""
        out = []
        if self.config.clip_norm <= 0:
            out.append("tokens")
        if self.privacy.gradient_clip_norm <= 0:
            out.append("pooled-gradient")
        if self.privacy.over_the_air_clip_norm <= 0:
            out.append("device-modules")
        return out
