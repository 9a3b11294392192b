"""``bench training``'s ``privacy``: accuracy at strict budgets, with power control.

The sensor task, the small encoder (2 layers, hidden 64), 10 devices that all train
in each of ``rounds`` rounds (5 local steps of batch 16, clip norm 1), each device
on ``BANDWIDTH_HZ`` of uplink at 30-250 m with correlated Rayleigh fading. Per
target epsilon (8 and 1, delta 1e-5) power control calibrates every device's
noise multiplier over the planned rounds and lowers its power to reach it; the
same job with no noise at all is the control. Reported per target: the
``epsilon`` reached (of what is accounted: the tokens, and the pooled gradients
when ``gradient_clip_norm`` is set), ``accuracy`` (mean test accuracy of the last
three rounds; ``noise_free_accuracy`` likewise), the noise multiplier, the mean
received SNR per symbol and the power fraction it cost, and what stays outside
epsilon. ``full_power`` is what the same channel gives without power control.

A device's sampling rate is batch / its examples, so the figures depend on the
data per device (``examples_per_device``, 3,200 here): the privacy of a
per-example release is amplified only linearly in that rate.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .channel import ChannelState, DeviceProfile
from .config import ChannelConfig, EncoderConfig, FederatedConfig, LoraSettings, PrivacyConfig
from .federated import FederatedTrainer
from .models import ServerModel, build_encoder
from .privacy import UplinkPrivacy
from .tasks import sensor_task

__all__ = ["BANDWIDTH_HZ", "bench_privacy", "private_run"]

BANDWIDTH_HZ = 1e6  # each device's uplink band
TARGETS = (8.0, 1.0)


def private_run(
    config: FederatedConfig,
    examples_per_device: int = 3200,
    noisy: bool = True,
    seed: int = 0,
    b_only: bool = False,
) -> dict[str, Any]:
    """One job of ``config.rounds`` rounds in which every device trains each round over
    its faded channel with ``config.privacy`` (``noisy=False``: the noise-free control)."""
    task = sensor_task(examples=examples_per_device * config.devices, test=500, seed=seed)
    torch.manual_seed(seed)
    encoder = build_encoder(EncoderConfig(), seed=seed)
    trainer = FederatedTrainer(
        task, ServerModel(encoder, LoraSettings(rank=8, alpha=16, b_only=b_only)), config
    )
    rng = np.random.default_rng([seed, 7])
    profiles = [
        DeviceProfile(distance_m=float(rng.uniform(30, 250)), examples=n) for n in trainer.examples
    ]
    channel = ChannelState(ChannelConfig(), profiles, rng)
    privacy = UplinkPrivacy(
        config,
        trainer.examples,
        task.window * trainer.server.hidden,
        trainer.server.hidden,
        trainer.device_parameter_count,
    )
    n0 = 10 ** ((channel.config.noise_psd_dbm_per_hz - 30) / 10)
    devices = list(range(config.devices))
    accuracies, snr_db, fractions, z = [], [], [], []
    outside: set[str] = set(privacy.outside_epsilon())
    for _ in range(config.rounds):
        channel.advance()
        power = np.array([p.tx_power_w for p in profiles])
        full = power * channel.path_gain() / (n0 * BANDWIDTH_HZ)
        if noisy:
            uplinks = privacy.apply(trainer, devices, {k: float(full[k]) for k in devices})
            snr_db += [u.received_snr_db for u in uplinks.values()]
            fractions += [u.power_fraction for u in uplinks.values()]
            z += [u.noise_multiplier for u in uplinks.values()]
        result = trainer.run_round(devices)
        outside |= set(result.outside_epsilon)
        accuracies.append(float(result.test_accuracy or 0.0))
    return {
        "epsilon": round(privacy.epsilon(), 3) if noisy else math.inf,
        "accuracy": round(float(np.mean(accuracies[-3:])), 4),
        "accuracy_by_round": [round(a, 4) for a in accuracies],
        "noise_multiplier": round(float(np.median(z)), 4) if z else 0.0,
        "received_snr_db": round(float(np.mean(snr_db)), 2) if snr_db else None,
        "power_fraction": float(f"{np.median(fractions):.3g}") if fractions else 1.0,
        "outside_epsilon": sorted(outside),
    }


def bench_privacy(
    rounds: int = 10,
    examples_per_device: int = 3200,
    gradient_clip_norm: float = 0.0,
    over_the_air_clip_norm: float = 0.0,
) -> dict[str, Any]:
    """The figures of the module docstring, one job per target plus the control."""
    base = FederatedConfig(
        devices=10,
        devices_per_round=10,
        rounds=rounds,
        local_steps=5,
        batch_size=16,
        clip_norm=1.0,
        link_dtype="float32",
        seed=0,
        privacy=PrivacyConfig(
            gradient_clip_norm=gradient_clip_norm, over_the_air_clip_norm=over_the_air_clip_norm
        ),
    )
    control = private_run(base, examples_per_device, noisy=False)
    full_power = private_run(base, examples_per_device)
    targets = []
    for target in TARGETS:
        config = replace(base, privacy=replace(base.privacy, target_epsilon=target))
        run = private_run(config, examples_per_device)
        targets.append(
            {
                "target_epsilon": target,
                **run,
                "noise_free_accuracy": control["accuracy"],
                "accuracy_gap_points": round(100 * (control["accuracy"] - run["accuracy"]), 1),
            }
        )
    return {
        "targets": targets,
        "noise_free_accuracy": control["accuracy"],
        "full_power": {
            k: full_power[k] for k in ("epsilon", "accuracy", "noise_multiplier", "received_snr_db")
        },
        "delta": base.privacy.delta,
        "neighbouring": "replace one example; per-example release, sensitivity 2 x clip_norm",
        "config": {
            "task": "sensor",
            "encoder": "small (2 layers, hidden 64)",
            "devices": base.devices,
            "rounds": rounds,
            "local_steps": base.local_steps,
            "batch_size": base.batch_size,
            "examples_per_device": examples_per_device,
            "clip_norm": base.clip_norm,
            "gradient_clip_norm": gradient_clip_norm,
            "over_the_air_clip_norm": over_the_air_clip_norm,
            "bandwidth_hz": BANDWIDTH_HZ,
        },
    }
