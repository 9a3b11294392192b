"""The channel-noise privacy mechanism and its Rényi-DP accountant."""

from __future__ import annotations

import math

import numpy as np
import pytest
from opacus.accountants import RDPAccountant

from training.config import EncoderConfig, FederatedConfig, LoraSettings
from training.errors import TrainingConfigError
from training.federated import FederatedTrainer
from training.models import ServerModel, build_encoder
from training.privacy import RdpAccountant, noise_multiplier_from_snr, uplink_noise_std
from training.tasks import sensor_task


@pytest.mark.parametrize(
    ("z", "q", "steps"),
    [
        (1.0, 0.01, 1000),
        (0.5, 0.1, 50),
        (2.0, 0.05, 300),
        (1.1, 0.04, 100),
        (0.8, 1.0, 10),
        (3.0, 0.02, 5_000),
    ],
    ids=["dpsgd-classic", "low-noise", "high-noise", "fl-round", "full-batch", "long-run"],
)
def test_epsilon_agrees_with_opacus_within_1_percent(z: float, q: float, steps: int):
    ours = RdpAccountant()
    ours.step(z, q, steps)
    theirs = RDPAccountant()
    theirs.history = [(z, q, steps)]
    expected = theirs.get_epsilon(1e-5)
    assert math.isclose(ours.epsilon(1e-5), expected, rel_tol=0.01)


def test_composition_over_rounds_adds_up():
    once, split = RdpAccountant(), RdpAccountant()
    once.step(1.2, 0.05, 20)
    for _ in range(4):
        split.step(1.2, 0.05, 5)
    assert math.isclose(once.epsilon(1e-5), split.epsilon(1e-5), rel_tol=1e-9)


def test_epsilon_rises_with_snr_and_with_rounds():
    values = 32 * 64
    by_snr = []
    for snr_db in (-30, -27, -24, -21):
        acc = RdpAccountant()
        acc.step(noise_multiplier_from_snr(10 ** (snr_db / 10), values), 0.05, 50)
        by_snr.append(acc.epsilon(1e-5))
    assert by_snr == sorted(by_snr) and len(set(by_snr)) == 4
    acc, by_rounds = RdpAccountant(), []
    for _ in range(5):
        acc.step(noise_multiplier_from_snr(10 ** (-27 / 10), values), 0.05, 5)
        by_rounds.append(acc.epsilon(1e-5))
    assert by_rounds == sorted(by_rounds) and len(set(by_rounds)) == 5


def test_noise_multiplier_from_snr():
    assert noise_multiplier_from_snr(1.0, 1) == 1.0
    assert math.isclose(noise_multiplier_from_snr(100.0, 4), 0.05)
    assert math.isclose(uplink_noise_std(100.0, 2.0, 4), 0.1)
    with pytest.raises(TrainingConfigError):
        noise_multiplier_from_snr(0.0, 10)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 5])
def test_b_only_beats_a_and_b_under_the_same_channel_noise(seed: int):
    """Channel noise at -7 dB on clipped activations (noise std 0.05 per value, clip 1):
    training B alone reaches a lower test loss than training A and B."""
    values = 32 * 64
    snr = 1 / (values * 0.05**2)
    noise = uplink_noise_std(snr, 1.0, values)
    assert math.isclose(noise, 0.05)
    task = sensor_task(examples=2000, test=500, seed=seed)
    final = {}
    for b_only in (False, True):
        server = ServerModel(
            build_encoder(EncoderConfig(), seed=seed), LoraSettings(rank=8, alpha=16, b_only=b_only)
        )
        config = FederatedConfig(devices=6, devices_per_round=6, rounds=8, seed=seed, clip_norm=1.0)
        trainer = FederatedTrainer(task, server, config, transport_noise_std=[noise] * 6)
        losses = [trainer.run_round().test_loss for _ in range(8)]
        final[b_only] = float(np.mean(losses[-3:]))
    assert final[True] < final[False], final
