"""The channel-noise privacy mechanism, power control and the Rényi-DP accountant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp
from scipy import integrate, stats

from training.channel import power_control
from training.config import EncoderConfig, FederatedConfig, LoraSettings, PrivacyConfig
from training.errors import TrainingConfigError
from training.federated import FederatedTrainer, over_the_air_mean
from training.models import ServerModel, build_encoder
from training.privacy import (
    DEFAULT_ORDERS,
    RdpAccountant,
    UplinkPrivacy,
    calibrate_noise_multiplier,
    epsilon_from_rdp,
    noise_multiplier_from_snr,
    rdp_per_example_release,
    snr_for_noise_multiplier,
    uplink_noise_std,
)
from training.tasks import sensor_task
from training.transport import Transport, clip_per_example


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
def test_sampled_gaussian_sum_agrees_with_opacus_within_1_percent(z: float, q: float, steps: int):
    ours = RdpAccountant()
    ours.step(z, q, steps)
    theirs = RDPAccountant()
    theirs.history = [(z, q, steps)]
    expected = theirs.get_epsilon(1e-5)
    assert math.isclose(ours.epsilon(1e-5), expected, rel_tol=0.01)


@pytest.mark.parametrize("z", [0.7, 2.0, 9.0])
def test_unsampled_release_is_opacus_gaussian_at_half_the_noise_multiplier(z: float):
    """Replace-one doubles the sensitivity: our release with noise multiplier z is
    opacus's Gaussian (q = 1) with z / 2; the conversion to epsilon is opacus's too."""
    orders = list(DEFAULT_ORDERS)
    ours = 7 * rdp_per_example_release(1.0, 2 / z, orders)
    theirs = opacus_rdp.compute_rdp(q=1.0, noise_multiplier=z / 2, steps=7, orders=orders)
    assert np.allclose(ours, theirs, rtol=1e-12)
    eps, _ = opacus_rdp.get_privacy_spent(orders=orders, rdp=theirs, delta=1e-5)
    assert math.isclose(epsilon_from_rdp(ours, orders, 1e-5), eps, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("q", "mu", "order"), [(0.05, 1.0, 2.0), (0.3, 0.5, 3.5), (0.01, 2.0, 6.0)]
)
def test_release_rdp_is_the_renyi_divergence_of_the_two_outputs(q: float, mu: float, order: float):
    """Brute force: integrate the Rényi divergence between 'not sampled, or N(0, 1)' and
    'not sampled, or N(mu, 1)' (the replaced example's slot, sampled with rate q)."""
    p, r = stats.norm(0, 1), stats.norm(mu, 1)
    gaussian, _ = integrate.quad(
        lambda x: math.exp(order * p.logpdf(x) + (1 - order) * r.logpdf(x)), -30, 30, epsabs=1e-14
    )
    expected = math.log((1 - q) + q * gaussian) / (order - 1)
    ours = float(rdp_per_example_release(q, mu, [order])[0])
    assert math.isclose(ours, expected, rel_tol=1e-6)


def test_replace_one_sensitivity_is_twice_the_clip_norm():
    """Two examples clipped to C differ by at most 2C, and opposite ones reach it."""
    gen = torch.Generator().manual_seed(0)
    x = 5 * torch.randn(200, 8, 4, generator=gen)
    clipped = clip_per_example(x, 0.7)
    worst = max(float((clipped[i] - clipped[j]).norm()) for i in range(50) for j in range(50))
    assert worst <= 1.4 + 1e-6
    pair = clip_per_example(torch.stack([x[0], -x[0]]), 0.7)
    assert math.isclose(float((pair[0] - pair[1]).norm()), 1.4, rel_tol=1e-6)


def test_composition_over_rounds_adds_up():
    once, split = RdpAccountant(), RdpAccountant()
    once.step_release(1.2, 0.05, 20)
    for _ in range(4):
        split.step_release(1.2, 0.05, 5)
    assert math.isclose(once.epsilon(1e-5), split.epsilon(1e-5), rel_tol=1e-9)


def test_epsilon_rises_with_snr_and_with_rounds():
    values = 32 * 64
    by_snr = []
    for snr_db in (-40, -37, -34, -31):
        acc = RdpAccountant()
        z = noise_multiplier_from_snr(10 ** (snr_db / 10), values)
        acc.step_release(2 / z, 0.05, 50)
        by_snr.append(acc.epsilon(1e-5))
    assert by_snr == sorted(by_snr) and len(set(by_snr)) == 4
    acc, by_rounds = RdpAccountant(), []
    for _ in range(5):
        acc.step_release(2 / noise_multiplier_from_snr(10 ** (-37 / 10), values), 0.05, 5)
        by_rounds.append(acc.epsilon(1e-5))
    assert by_rounds == sorted(by_rounds) and len(set(by_rounds)) == 5


def test_noise_multiplier_from_snr_and_back():
    assert noise_multiplier_from_snr(1.0, 1) == 1.0
    assert math.isclose(noise_multiplier_from_snr(100.0, 4), 0.05)
    assert math.isclose(uplink_noise_std(100.0, 2.0, 4), 0.1)
    assert math.isclose(snr_for_noise_multiplier(0.05, 4), 100.0)
    with pytest.raises(TrainingConfigError):
        noise_multiplier_from_snr(0.0, 10)


def test_power_control_caps_the_received_snr_within_the_power_limit():
    # target z = 0.5 over 4 values: at most snr 1; a channel at snr 100 sends at 1 %
    cap = snr_for_noise_multiplier(0.5, 4)
    assert power_control(100.0, cap) == pytest.approx((0.01, 1.0))
    # too weak for the target: full power, noisier (more private) than asked
    fraction, snr = power_control(0.5, cap)
    assert fraction == 1.0 and noise_multiplier_from_snr(snr, 4) > 0.5
    assert power_control(100.0, 0.0) == (1.0, 100.0)  # no target


@pytest.mark.parametrize("target", [8.0, 1.0])
def test_calibration_is_the_least_noise_within_the_target(target: float):
    def planned(z: float) -> np.ndarray:
        return 50 * rdp_per_example_release(0.005, 2 / z)

    z = calibrate_noise_multiplier(target, 1e-5, planned)
    assert epsilon_from_rdp(planned(z), DEFAULT_ORDERS, 1e-5) <= target
    assert epsilon_from_rdp(planned(z / 1.002), DEFAULT_ORDERS, 1e-5) > target


def _trainer(privacy: PrivacyConfig, clip_norm: float = 1.0) -> FederatedTrainer:
    task = sensor_task(examples=1200, test=100, seed=3)
    server = ServerModel(build_encoder(EncoderConfig(), seed=3), LoraSettings(rank=4, alpha=8))
    config = FederatedConfig(
        devices=3,
        devices_per_round=3,
        rounds=2,
        local_steps=2,
        clip_norm=clip_norm,
        seed=3,
        privacy=privacy,
    )
    return FederatedTrainer(task, server, config)


def _uplinks(trainer: FederatedTrainer) -> UplinkPrivacy:
    hidden = trainer.server.hidden
    return UplinkPrivacy(
        trainer.config,
        trainer.examples,
        trainer.task.window * hidden,
        hidden,
        trainer.device_parameter_count,
    )


def test_a_target_epsilon_is_reached_and_not_exceeded_with_every_uplink_accounted():
    privacy = PrivacyConfig(target_epsilon=4.0, gradient_clip_norm=0.05, over_the_air_clip_norm=1.0)
    trainer = _trainer(privacy)
    uplinks = _uplinks(trainer)
    strong = {k: 1e3 for k in range(3)}  # 30 dB at full power: power control must cut it
    outside: set[str] = set()
    for _ in range(trainer.config.rounds):
        per_device = uplinks.apply(trainer, [0, 1, 2], strong)
        outside |= set(trainer.run_round([0, 1, 2]).outside_epsilon)
    assert 0.95 * 4.0 < uplinks.epsilon() <= 4.0
    assert outside == set() and uplinks.outside_epsilon() == []
    for k, u in per_device.items():
        assert u.noise_multiplier == pytest.approx(uplinks.targets[k], rel=1e-9)
        assert u.power_fraction < 1e-3 and u.received_snr_db < 0
        assert u.token_noise_std == pytest.approx(u.noise_multiplier)  # clip norm 1
    assert trainer.over_the_air_noise_std > 0


def test_without_targets_the_noise_free_uplinks_are_listed_outside_epsilon():
    trainer = _trainer(PrivacyConfig())
    uplinks = _uplinks(trainer)
    uplinks.apply(trainer, [0, 1, 2], {k: 1e3 for k in range(3)})
    result = trainer.run_round([0, 1, 2])
    assert set(result.outside_epsilon) == {"device-modules", "pooled-gradient"}
    assert uplinks.outside_epsilon() == ["pooled-gradient", "device-modules"]
    assert math.isfinite(uplinks.epsilon())  # the tokens are accounted (a huge epsilon)
    unclipped = _trainer(PrivacyConfig(), clip_norm=0.0)
    assert "tokens" in unclipped.run_round([0]).outside_epsilon
    assert _uplinks(unclipped).epsilon() == math.inf


def test_transport_lists_an_uplink_sent_noise_free():
    t = Transport(clip_norm=1.0, noise_std=0.1)
    t.up(torch.ones(2, 3), "tokens")
    t.up_gradient(torch.ones(2, 3))
    t.count_upload([torch.ones(4)], "device-modules")
    assert t.outside_epsilon == {"pooled-gradient", "device-modules"}


def test_over_the_air_mean_clips_each_update_and_adds_one_draw_on_the_sum():
    base = {"w": torch.zeros(2)}
    states = [{"w": torch.tensor([3.0, 4.0])}, {"w": torch.tensor([0.0, 0.5])}]
    exact = over_the_air_mean(base, states, clip_norm=1.0, noise_std=0.0)
    assert torch.allclose(exact["w"], torch.tensor([0.3, 0.65]))  # (0.6,0.8)+(0,0.5), / 2
    big = {"w": torch.zeros(20_000)}
    noisy = over_the_air_mean(
        big, [big, big], 1.0, noise_std=0.5, generator=torch.Generator().manual_seed(1)
    )
    assert float(noisy["w"].std()) == pytest.approx(0.25, rel=0.02)  # 0.5 on the sum, / 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_epsilon": 8.0, "target_noise_multiplier": 1.0}, "target_noise_multiplier"),
        ({"target_epsilon": -1.0}, "target_epsilon"),
        ({"delta": 1.0}, "delta"),
    ],
    ids=["both-targets", "negative", "delta"],
)
def test_bad_privacy_settings_fail_with_the_field_named(kwargs: dict, field: str):
    with pytest.raises(TrainingConfigError, match=field):
        PrivacyConfig(**kwargs)


def test_a_target_without_clipping_is_refused():
    with pytest.raises(TrainingConfigError, match="clip_norm"):
        FederatedConfig(clip_norm=0.0, privacy=PrivacyConfig(target_epsilon=8.0))
