"""Channel model: path loss, correlated Rayleigh fading, rate, delay and energy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import j0

from training.channel import (
    ChannelState,
    DeviceProfile,
    correlated_rayleigh,
    round_delay_energy,
)
from training.config import ChannelConfig
from training.errors import TrainingConfigError


def test_fading_has_unit_power_and_jakes_correlation():
    rng = np.random.default_rng(0)
    h = correlated_rayleigh(rng, (20_000,), 2, doppler_hz=10.0, slot_s=0.01)
    assert abs(np.mean(np.abs(h[0]) ** 2) - 1) < 0.03
    corr = np.real(np.mean(h[1] * np.conj(h[0])))
    assert abs(corr - j0(2 * np.pi * 0.1)) < 0.03


def test_farther_devices_get_lower_snr_and_rate():
    profiles = [DeviceProfile(distance_m=50), DeviceProfile(distance_m=200)]
    state = ChannelState(ChannelConfig(), profiles, np.random.default_rng(0))
    state.h = np.ones(2, dtype=complex)  # no fading: path loss alone
    snr = state.snr(np.array([1e6, 1e6]))
    assert snr[0] / snr[1] == pytest.approx(4**3.5)
    rate = state.rate_bps(np.array([1e6, 1e6]))
    assert rate[0] > rate[1] and rate[1] == pytest.approx(1e6 * np.log2(1 + snr[1]))


def test_round_delay_is_the_slowest_device_and_energy_is_per_device():
    profiles = [
        DeviceProfile(distance_m=10, flops_per_s=1e9, compute_power_w=2, tx_power_w=0.5),
        DeviceProfile(distance_m=10, flops_per_s=2e9, compute_power_w=1, tx_power_w=0.5),
    ]
    delay, energy = round_delay_energy(
        profiles, [0, 1], flops=1e9, bits=1e6, rates_bps=np.array([1e6, 4e6])
    )
    assert delay == pytest.approx(1.0 + 1.0)  # device 0: 1 s compute + 1 s transfer
    assert energy == pytest.approx([2 * 1 + 0.5 * 1, 1 * 0.5 + 0.5 * 0.25])


@pytest.mark.parametrize("field", ["distance_m", "flops_per_s", "tx_power_w"])
def test_impossible_device_profile(field: str):
    kwargs = {"distance_m": 10.0, field: -1.0}
    with pytest.raises(TrainingConfigError, match=f"DeviceProfile.{field}"):
        DeviceProfile(**kwargs)


def test_impossible_channel_config():
    with pytest.raises(TrainingConfigError, match="ChannelConfig.max_distance_m"):
        ChannelConfig(min_distance_m=100, max_distance_m=10)
