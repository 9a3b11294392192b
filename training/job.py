"""A split-federated-LoRA job driven round by round by the Lyapunov scheduler.

Per round: the fading advances; the scheduler picks devices and bandwidth
from the current channels; each chosen device's uplink SNR on its bandwidth
sets, after power control towards the job's privacy target, the channel noise
on its clipped uplinks and its privacy cost (:class:`training.privacy.UplinkPrivacy`);
the round trains for real; its delay and energy come from the bytes actually sent,
the leased bandwidth and the devices' compute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .channel import ChannelState, DeviceProfile, round_delay_energy
from .errors import TrainingConfigError
from .federated import FederatedTrainer, RoundResult
from .privacy import DevicePrivacy, UplinkPrivacy
from .scheduler import LyapunovScheduler, Schedule

__all__ = ["MAX_WAIT_SLOTS", "JobRound", "ScheduledJob"]

MAX_WAIT_SLOTS = 100  # slots run_round waits for a channel under the cap (1 s of fading)


@dataclass(frozen=True)
class JobRound:
    """A trained round with its cost and privacy (and its schedule, when the job chose it)."""

    result: RoundResult
    devices: tuple[int, ...]
    delay_s: float
    energy_j: float
    epsilon: float  # the largest over devices so far, at ``delta``; inf without clipping
    schedule: Schedule | None = None
    # privacy (training.privacy): what each device's uplink cost and what no epsilon covers
    uplinks: Mapping[int, DevicePrivacy] = field(default_factory=dict)
    outside_epsilon: tuple[str, ...] = ()

    @property
    def received_snr_db(self) -> float:
        """Mean received SNR (dB per symbol) of the round's token uplinks."""
        snrs = [u.received_snr_db for u in self.uplinks.values()]
        return float(np.mean(snrs)) if snrs else float("nan")


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
        task = trainer.task
        hidden = trainer.server.hidden
        self.values_per_example = task.window * hidden  # analog values of one uplinked example
        self.privacy = UplinkPrivacy(
            trainer.config,
            trainer.examples,
            self.values_per_example,
            hidden,
            trainer.device_parameter_count,
        )

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
        uplinks = self.privacy.apply(
            self.trainer, devices, {k: a[k] / bandwidth_hz[k] for k in devices}
        )
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
        epsilon = self.privacy.epsilon(self.delta)  # inf when nothing is clipped
        outside = tuple(sorted({*self.privacy.outside_epsilon(), *result.outside_epsilon}))
        return JobRound(
            result,
            tuple(devices),
            delay,
            energy,
            epsilon,
            uplinks=uplinks,
            outside_epsilon=outside,
        )

    def run_round(self, available: Iterable[int] | None = None) -> JobRound:
        """One round on the job's own bandwidth: plan, then train what was planned.

        When no device can finish under the scheduler's ``max_round_delay_s`` (every
        channel in a deep fade), the job waits for the fading to move on, one slot at a
        time, up to MAX_WAIT_SLOTS slots, rather than train a round past the cap."""
        if self.bandwidth_hz <= 0:
            raise TrainingConfigError("run_round needs the job's bandwidth_hz (> 0)")
        ids = list(available) if available is not None else list(range(len(self.profiles)))
        for _ in range(MAX_WAIT_SLOTS):
            schedule = self.plan(ids, self.bandwidth_hz)
            if schedule.devices:
                break
        else:
            raise TrainingConfigError(
                f"no device could finish a round within max_round_delay_s "
                f"({self.scheduler.config.round_cap_s} s) in {MAX_WAIT_SLOTS} slots: raise "
                "max_round_delay_s or the bandwidth, or lower the upload"
            )
        trained = self.train(schedule.devices, schedule.bandwidth_hz)
        return replace(trained, schedule=schedule)
