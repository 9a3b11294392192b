"""B-only LoRA vs A+B under the uplink's channel noise, with a noise-free control.

Measured (sensor task, small encoder, 6 devices, 8 rounds, clip norm 1; mean test
loss of the last 3 rounds, A+B / B-only; seeds 4, 5, 6):

    noise multiplier z   0 (noise-free)   0.05            0.5             2.0
    seed 4               0.166 / 0.131    0.190 / 0.174   1.005 / 0.930   1.106 / 1.104
    seed 5               0.609 / 0.318    0.491 / 0.345   0.672 / 0.667   0.859 / 0.861
    seed 6               0.335 / 0.220    0.303 / 0.257   0.692 / 0.669   0.861 / 0.853

B-only reaches the lower loss in 11 of 12 cells, but its margin is largest without
any noise (mean 0.147) and shrinks as noise grows (0.069 at z = 0.05, 0.034 at 0.5,
0.003 at 2.0, where seed 5 loses). So the data support "B-only trains this task
better at low noise", not "B-only mitigates the noise
amplification": this test asserts the first, in the noise-free control and at
z = 0.5, and nothing about the margin growing with noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.config import EncoderConfig, FederatedConfig, LoraSettings
from training.federated import FederatedTrainer
from training.models import ServerModel, build_encoder
from training.tasks import sensor_task


def final_loss(seed: int, z: float, b_only: bool, rounds: int = 8) -> float:
    task = sensor_task(examples=2000, test=500, seed=seed)
    server = ServerModel(
        build_encoder(EncoderConfig(), seed=seed), LoraSettings(rank=8, alpha=16, b_only=b_only)
    )
    config = FederatedConfig(
        devices=6,
        devices_per_round=6,
        rounds=rounds,
        seed=seed,
        clip_norm=1.0,
        link_dtype="float32",
    )
    trainer = FederatedTrainer(task, server, config, transport_noise_std=[z] * 6)
    losses = [trainer.run_round().test_loss for _ in range(rounds)]
    return float(np.mean(losses[-3:]))


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 6])
@pytest.mark.parametrize("z", [0.0, 0.5], ids=["noise-free", "z=0.5"])
def test_b_only_reaches_a_lower_loss_than_a_and_b_with_and_without_noise(seed: int, z: float):
    """Clip norm 1, so z is the noise std per value."""
    a_and_b, b_only = final_loss(seed, z, False), final_loss(seed, z, True)
    assert b_only < a_and_b, (a_and_b, b_only)
