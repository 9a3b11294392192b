"""A split-federated-LoRA job driven round by round by the Lyapunov scheduler.

Per round: the fading advances; the scheduler picks devices and bandwidth
from the current channels; each chosen device's uplink SNR on its bandwidth
sets the channel noise on its clipped activations (the privacy mechanism) and
its privacy cost; the round trains for real; its delay and energy come from the
bytes actually sent, the leased bandwidth and the devices' compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .channel import ChannelState, DeviceProfile, round_delay_energy
from .federated import FederatedTrainer, RoundResult
from .privacy import RdpAccountant, noise_multiplier_from_snr
from .scheduler import LyapunovScheduler, Schedule

__all__ = ["JobRound", "ScheduledJob"]


@dataclass(frozen=True)
class JobRound:
    """A trained round with its schedule, cost and privacy."""

    result: RoundResult
    schedule: Schedule
    delay_s: float
    energy_j: float
    epsilon: float  # the largest over devices so far, at ``delta``


class ScheduledJob:
    """Runs a :class:`FederatedTrainer` with a :class:`LyapunovScheduler` over a channel."""

    def __init__(
        self,
        trainer: FederatedTrainer,
        scheduler: LyapunovScheduler,
        channel: ChannelState,
        profiles: list[DeviceProfile],
        bandwidth_hz: float,
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

    def run_round(self, available: list[int] | None = None) -> JobRound:
        self.channel.advance()
        a = self.gain_over_noise_hz()
        schedule = self.scheduler.decide(
            available if available is not None else range(len(self.profiles)),
            self.trainer.examples,
            a,
            [p.flops_per_s for p in self.profiles],
            self.bandwidth_hz,
        )
        cfg = self.trainer.config
        noise = [0.0] * len(self.profiles)
        for k, bw in schedule.bandwidth_hz.items():
            snr = a[k] / bw
            z = noise_multiplier_from_snr(snr, self.values_per_example)
            noise[k] = cfg.clip_norm * z if cfg.clip_norm > 0 else 0.0
            if cfg.clip_norm > 0:
                q = min(1.0, cfg.batch_size / self.trainer.examples[k])
                self.accountants[k].step(z, q, cfg.local_steps)
        self.trainer.noise_std = noise
        result = self.trainer.run_round(list(schedule.devices))
        bits = {k: 8 * b for k, b in result.uplink_bytes_per_device.items()}
        rates = np.zeros(len(self.profiles))
        for k, bw in schedule.bandwidth_hz.items():
            rates[k] = bw * np.log2(1 + a[k] / bw)
        delay, energies = 0.0, []
        flops = self.scheduler.config.compute_flops
        for k in schedule.devices:
            d, e = round_delay_energy(self.profiles, [k], flops, bits[k], rates)
            delay = max(delay, d)
            energies.extend(e)
        self.scheduler.observe(delay)
        epsilon = max(acc.epsilon(self.delta) for acc in self.accountants)
        return JobRound(result, schedule, delay, float(sum(energies)), epsilon)
