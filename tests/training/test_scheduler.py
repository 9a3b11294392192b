"""The Lyapunov scheduler: delay budget, the V trade-off, bandwidth, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from training.channel import ChannelState, DeviceProfile
from training.config import ChannelConfig, EncoderConfig, FederatedConfig, LoraSettings
from training.errors import TrainingConfigError
from training.federated import FederatedTrainer
from training.job import ScheduledJob
from training.models import ServerModel, build_encoder
from training.scheduler import LyapunovScheduler, SchedulerConfig, min_bandwidth_hz
from training.tasks import sensor_task

N0 = 10 ** ((-174 - 30) / 10)


def cell(k: int = 12, seed: int = 0) -> tuple[list[DeviceProfile], ChannelState]:
    rng = np.random.default_rng(seed)
    profiles = [
        DeviceProfile(distance_m=float(d), flops_per_s=float(f), examples=int(e))
        for d, f, e in zip(
            rng.uniform(30, 250, k),
            rng.uniform(5e9, 3e10, k),
            rng.integers(50, 400, k),
            strict=True,
        )
    ]
    return profiles, ChannelState(ChannelConfig(), profiles, rng)


def simulate(v: float, rounds: int, budget_s: float = 0.5) -> tuple[float, float]:
    profiles, channel = cell()
    scheduler = LyapunovScheduler(
        SchedulerConfig(v=v, delay_budget_s=budget_s, upload_bits=8e6, compute_flops=2e9)
    )
    delays, counts = [], []
    for _ in range(rounds):
        channel.advance()
        a = np.array([p.tx_power_w for p in profiles]) * channel.path_gain() / N0
        schedule = scheduler.decide(
            range(len(profiles)),
            [p.examples for p in profiles],
            a,
            [p.flops_per_s for p in profiles],
            20e6,
        )
        assert sum(schedule.bandwidth_hz.values()) <= 20e6 * (1 + 1e-9)
        scheduler.observe(schedule.delay_s)
        delays.append(schedule.delay_s)
        counts.append(len(schedule.devices))
    return float(np.mean(delays)), float(np.mean(counts))


@pytest.mark.slow
def test_long_run_average_delay_stays_within_5_percent_of_the_budget():
    mean_delay, _ = simulate(v=1.0, rounds=600)
    assert abs(mean_delay - 0.5) / 0.5 <= 0.05, mean_delay


def test_budget_binds_the_unconstrained_choice():
    # with Q = 0 the scheduler would take everyone; the queue pulls the delay to the budget
    profiles, channel = cell()
    s = LyapunovScheduler(
        SchedulerConfig(v=1.0, delay_budget_s=0.5, upload_bits=8e6, compute_flops=2e9)
    )
    a = np.array([p.tx_power_w for p in profiles]) * channel.path_gain() / N0
    first = s.decide(
        range(12), [p.examples for p in profiles], a, [p.flops_per_s for p in profiles], 20e6
    )
    assert len(first.devices) == 12 and first.delay_s > 0.5


def test_larger_v_schedules_more_devices_at_a_higher_delay():
    low_delay, low_count = simulate(v=0.5, rounds=150)
    high_delay, high_count = simulate(v=50.0, rounds=150)
    assert high_count > low_count
    assert high_delay > low_delay


@pytest.mark.slow
def test_larger_v_reaches_a_lower_loss_with_real_training():
    outcome = {}
    for v in (0.02, 20.0):
        profiles, channel = cell(k=10, seed=1)
        task = sensor_task(examples=1500, test=400, seed=1)
        server = ServerModel(build_encoder(EncoderConfig(), seed=1), LoraSettings())
        trainer = FederatedTrainer(
            task, server, FederatedConfig(devices=10, seed=1, learning_rate=3e-3)
        )
        profiles = [
            DeviceProfile(p.distance_m, p.flops_per_s, examples=n)
            for p, n in zip(profiles, trainer.examples, strict=True)
        ]
        scheduler = LyapunovScheduler(
            SchedulerConfig(v=v, delay_budget_s=0.3, upload_bits=8e6, compute_flops=2e9)
        )
        job = ScheduledJob(trainer, scheduler, channel, profiles, bandwidth_hz=20e6)
        rounds = [job.run_round() for _ in range(6)]
        outcome[v] = (
            np.mean([len(r.schedule.devices) for r in rounds]),
            rounds[-1].result.test_loss,
            np.mean([r.delay_s for r in rounds]),
        )
    (low_n, low_loss, low_delay), (high_n, high_loss, high_delay) = outcome[0.02], outcome[20.0]
    assert high_n > low_n, outcome
    assert high_loss < low_loss, outcome
    assert high_delay > low_delay, outcome


def test_min_bandwidth_is_the_inverse_of_the_rate():
    a = np.array([1e9, 5e8, 2e7])
    rate = np.array([2e7, 1e7, 1e7])
    b = min_bandwidth_hz(rate, a)
    assert np.allclose(b * np.log2(1 + a / b), rate, rtol=1e-6)
    unreachable = min_bandwidth_hz(np.array([1e9]), np.array([1e6]))  # above a / ln 2
    assert np.isinf(unreachable).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay_budget_s": 0}, "delay_budget_s must be > 0"),
        ({"v": -1}, "v must be >= 0"),
        ({"min_devices": 0}, "min_devices must be >= 1"),
        ({"min_devices": 3, "max_devices": 2}, "max_devices must be >= min_devices"),
    ],
)
def test_bad_scheduler_config(kwargs: dict, message: str):
    base = {"v": 1.0, "delay_budget_s": 1.0, "upload_bits": 1e6, "compute_flops": 1e9}
    with pytest.raises(TrainingConfigError, match=message):
        SchedulerConfig(**{**base, **kwargs})


def test_negative_bandwidth_is_refused():
    _, channel = cell(k=3)
    with pytest.raises(TrainingConfigError, match="bandwidth_hz must be >= 0"):
        channel.rate_bps(np.array([1e6, -1.0, 1e6]))
    s = LyapunovScheduler(
        SchedulerConfig(v=1, delay_budget_s=1, upload_bits=1e6, compute_flops=1e9)
    )
    with pytest.raises(TrainingConfigError, match="bandwidth_hz must be > 0"):
        s.decide([0], [10], [1e9], [1e9], -5.0)
