"""A split-federated-LoRA job driven round by round by the Lyapunov scheduler.

Per round: the fading advances; the scheduler picks devices and bandwidth
from the current channels; each chosen device's uplink SNR on its bandwidth
sets the channel noise on its clipped activations (the privacy mechanism) and
its privacy cost; the round trains for real; its delay and energy come from the
bytes actually sent, the leased bandwidth and the devices' compute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .channel import ChannelState, DeviceProfile, round_delay_energy
from .errors import TrainingConfigError
from .federated import FederatedTrainer, RoundResult
from .privacy import RdpAccountant, noise_multiplier_from_snr
from .scheduler import LyapunovScheduler, Schedule

__all__ = ["JobRound", "ScheduledJob"]


@dataclass(frozen=True)
class JobRound:
    """A trained round with its cost and privacy (and its schedule, when the job chose it)."""

    result: RoundResult
    devices: tuple[int, ...]
    delay_s: float
    energy_j: float
    epsilon: float  # the largest over devices so far, at ``delta``; inf without clipping
    schedule: Schedule | None = None


class ScheduledJob:
    """Runs a :class:`FederatedTrainer` with a :class:`LyapunovScheduler` over a channel.

    A round is two steps, so that a market can sit between them: :meth:`plan` asks the
    scheduler which devices and how much bandwidth to buy; :meth:`train` runs the round
    with the devices and bandwidth actually obtained. :meth:`run_round` does both with
    the bandwidth the job was given (no market).
    """

    def __init__(
        self,
        trainer: FederatedTrainer,
        scheduler: LyapunovScheduler,
        channel: ChannelState,
        profiles: list[DeviceProfile],
        bandwidth_hz: float = 0.0,
        delta: float = 1e-5,
    ) -> None:
        self.trainer = trainer
        self.scheduler = scheduler
        self.channel = channel
        self.profiles = profiles
        self.bandwidth_hz = bandwidth_hz
        self.delta = delta
        self.accountants = [RdpAccountant() for _ in profiles]
        task = trainer.task
        hidden = trainer.server.hidden
        self.values_per_example = task.window * hidden  # analog values of one uplinked example

    def gain_over_noise_hz(self) -> np.ndarray:
        """P g / N0 of each device, for the scheduler (snr = this / bandwidth)."""
        c = self.channel.config
        n0 = 10 ** ((c.noise_psd_dbm_per_hz - 30) / 10)
        power = np.array([p.tx_power_w for p in self.profiles])
        return power * self.channel.path_gain() / n0

    def plan(self, available: Iterable[int], bandwidth_hz: float) -> Schedule:
        """The fading advances; the scheduler picks devices and bandwidth among ``available``
        from the current channels, sharing ``bandwidth_hz``."""
        self.channel.advance()
        return self.scheduler.decide(
            available,
            self.trainer.examples,
            self.gain_over_noise_hz(),
            [p.flops_per_s for p in self.profiles],
            bandwidth_hz,
        )

    def train(self, devices: Sequence[int], bandwidth_hz: Mapping[int, float]) -> JobRound:
        """Train one round with ``devices``, each on its ``bandwidth_hz``: its uplink SNR sets
        the channel noise on its clipped activations and its privacy cost; delay and energy
        come from the bytes actually sent; the scheduler observes the delay."""
        a = self.gain_over_noise_hz()
        cfg = self.trainer.config
        noise = [0.0] * len(self.profiles)
        for k in devices:
            z = noise_multiplier_from_snr(a[k] / bandwidth_hz[k], self.values_per_example)
            if cfg.clip_norm > 0:
                noise[k] = cfg.clip_norm * z
                q = min(1.0, cfg.batch_size / self.trainer.examples[k])
                self.accountants[k].step(z, q, cfg.local_steps)
        self.trainer.noise_std = noise
        result = self.trainer.run_round(list(devices))
        rates = np.zeros(len(self.profiles))
        for k in devices:
            bw = bandwidth_hz[k]
            rates[k] = bw * np.log2(1 + a[k] / bw)
        delay, energy = 0.0, 0.0
        flops = self.scheduler.config.compute_flops
        for k in devices:
            bits = 8 * result.uplink_bytes_per_device[k]
            d, e = round_delay_energy(self.profiles, [k], flops, bits, rates)
            delay = max(delay, d)
            energy += e[0]
        self.scheduler.observe(delay)
        epsilon = (
            max((acc.epsilon(self.delta) for acc in self.accountants), default=0.0)
            if cfg.clip_norm > 0
            else float("inf")  # nothing clipped, so the noise bounds nothing
        )
        return JobRound(result, tuple(devices), delay, energy, epsilon)

    def run_round(self, available: Iterable[int] | None = None) -> JobRound:
        """One round on the job's own bandwidth: plan, then train what was planned."""
        if self.bandwidth_hz <= 0:
            raise TrainingConfigError("run_round needs the job's bandwidth_hz (> 0)")
        schedule = self.plan(
            available if available is not None else range(len(self.profiles)), self.bandwidth_hz
        )
        trained = self.train(schedule.devices, schedule.bandwidth_hz)
        return replace(trained, schedule=schedule)
