"""The wireless uplink: path loss, Rayleigh fading, SNR, rate, delay and energy.

- path loss: ``L(d) = L0 + 10 n log10(d / 1 m)`` dB;
- small-scale fading: Rayleigh, time-correlated as a first-order Gauss-Markov
  process with Jakes' correlation ``rho = J0(2 pi f_d T)`` between slots;
- ``snr = P |h|^2 / (L(d) N0 B)`` and ``rate_bps = B log2(1 + snr)``;
- a round's delay is the slowest scheduled device's compute time
  (FLOPs / device speed) plus its transfer time (bits / rate); each device's
  energy is compute power x compute time + transmit power x transfer time;
- power control: a device sends below its maximum power when a privacy target caps
  the received SNR (:func:`power_control`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import j0

from .config import ChannelConfig
from .errors import TrainingConfigError

__all__ = [
    "ChannelState",
    "DeviceProfile",
    "correlated_rayleigh",
    "power_control",
    "round_delay_energy",
    "transfer",
]


def correlated_rayleigh(
    rng: np.random.Generator, shape: tuple[int, ...], slots: int, doppler_hz: float, slot_s: float
) -> np.ndarray:
    """Complex fading gains, ``slots`` x ``shape``, unit mean power, Jakes-correlated in time."""
    rho = float(j0(2 * np.pi * doppler_hz * slot_s))
    out = np.empty((slots, *shape), dtype=complex)

    def cn() -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)

    out[0] = cn()
    innovation = np.sqrt(max(0.0, 1 - rho**2))
    for t in range(1, slots):
        out[t] = rho * out[t - 1] + innovation * cn()
    return out


@dataclass(frozen=True)
class DeviceProfile:
    """What the scheduler knows of one device."""

    distance_m: float
    flops_per_s: float = 2e10
    compute_power_w: float = 2.0
    tx_power_w: float = 0.2
    examples: int = 100

    def __post_init__(self) -> None:
        for name in ("distance_m", "flops_per_s", "compute_power_w", "tx_power_w"):
            if getattr(self, name) <= 0:
                raise TrainingConfigError(f"DeviceProfile.{name} must be > 0")


class ChannelState:
    """The current fading of every device, advanced one slot per round."""

    def __init__(
        self, config: ChannelConfig, profiles: list[DeviceProfile], rng: np.random.Generator
    ) -> None:
        self.config = config
        self.profiles = profiles
        self.rng = rng
        self.rho = float(j0(2 * np.pi * config.doppler_hz * config.slot_s))
        self.h = (
            rng.standard_normal(len(profiles)) + 1j * rng.standard_normal(len(profiles))
        ) / np.sqrt(2)

    def advance(self) -> None:
        n = len(self.profiles)
        innovation = (self.rng.standard_normal(n) + 1j * self.rng.standard_normal(n)) / np.sqrt(2)
        self.h = self.rho * self.h + np.sqrt(max(0.0, 1 - self.rho**2)) * innovation

    def path_gain(self) -> np.ndarray:
        """Large-scale x small-scale power gain of each device (linear)."""
        c = self.config
        d = np.array([p.distance_m for p in self.profiles])
        loss_db = c.reference_loss_db + 10 * c.path_loss_exponent * np.log10(d)
        return np.abs(self.h) ** 2 * 10 ** (-loss_db / 10)

    def snr(self, bandwidth_hz: np.ndarray) -> np.ndarray:
        """Linear SNR of each device on the given bandwidth (0 where bandwidth is 0)."""
        c = self.config
        n0_w_per_hz = 10 ** ((c.noise_psd_dbm_per_hz - 30) / 10)
        p = np.array([prof.tx_power_w for prof in self.profiles])
        bw = np.asarray(bandwidth_hz, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(bw > 0, p * self.path_gain() / (n0_w_per_hz * bw), 0.0)
        return out

    def rate_bps(self, bandwidth_hz: np.ndarray) -> np.ndarray:
        bw = np.asarray(bandwidth_hz, dtype=float)
        if np.any(bw < 0):
            raise TrainingConfigError("bandwidth_hz must be >= 0")
        return bw * np.log2(1 + self.snr(bw))


def transfer(bits: float, rate_bps: float) -> float:
    """Seconds to send ``bits`` at ``rate_bps`` (infinite when the rate is 0)."""
    return bits / rate_bps if rate_bps > 0 else float("inf")


def round_delay_energy(
    profiles: list[DeviceProfile],
    chosen: list[int],
    flops: float,
    bits: float,
    rates_bps: np.ndarray,
) -> tuple[float, list[float]]:
    """(delay_s of the round, energy_j of each chosen device)."""
    delay = 0.0
    energy = []
    for k in chosen:
        p = profiles[k]
        compute_s = flops / p.flops_per_s
        tx_s = transfer(bits, float(rates_bps[k]))
        delay = max(delay, compute_s + tx_s)
        energy.append(p.compute_power_w * compute_s + p.tx_power_w * tx_s)
    return delay, energy


def power_control(full_power_snr: float, max_snr: float) -> tuple[float, float]:
    """(fraction of the device's maximum power to send at, the received SNR it gives):
    the power at which the received SNR is ``max_snr`` — the most a privacy target
    allows — or full power when even that falls short (Liu and Simeone's adaptive power
    control, :mod:`training.privacy`). ``max_snr`` <= 0 means no target: full power."""
    if full_power_snr <= 0:
        raise TrainingConfigError(f"full-power SNR must be > 0, got {full_power_snr}")
    if max_snr <= 0 or max_snr >= full_power_snr:
        return 1.0, full_power_snr
    return max_snr / full_power_snr, max_snr
