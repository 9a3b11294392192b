"""Synthetic tasks generated locally from a seed, and the non-IID partition.

- :func:`sensor_task`: multichannel IoT sensor windows (``channels`` x ``window``),
  one class per activity pattern (a class-specific mix of tones per channel plus
  noise); the device embedding maps each time step to a token.
- :func:`channel_prediction_task`: predict the next channel gains (dB) of
  ``subcarriers`` from the past ``window`` slots of time-correlated Rayleigh fading.
- :func:`dirichlet_partition`: a label-skewed split across devices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .channel import correlated_rayleigh
from .errors import TrainingConfigError

__all__ = ["Task", "channel_prediction_task", "dirichlet_partition", "sensor_task"]


@dataclass(frozen=True)
class Task:
    """Inputs ``x`` (examples x window x features), targets ``y``, and a held-out test split."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int  # 0 for regression
    window: int
    features: int

    @property
    def is_classification(self) -> bool:
        return self.num_classes > 0


_CHUNK = 20_000  # windows generated at a time


def sensor_task(
    examples: int = 4000,
    test: int = 800,
    classes: int = 6,
    channels: int = 6,
    window: int = 32,
    noise: float = 0.8,
    seed: int = 0,
) -> Task:
    """Activity-recognition-like windows: class c mixes tones with class-specific
    frequencies and phases on each channel, with random amplitude and noise."""
    if classes < 2 or channels < 1 or window < 2:
        raise TrainingConfigError("sensor_task needs classes >= 2, channels >= 1, window >= 2")
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.5, 4.0, size=(classes, channels))
    phases = rng.uniform(0, 2 * np.pi, size=(classes, channels))
    t = np.linspace(0, 2 * np.pi, window)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = rng.integers(0, classes, size=n)
        amp = rng.uniform(0.7, 1.3, size=(n, 1, channels))
        shift = rng.uniform(-0.3, 0.3, size=(n, 1, channels))
        # in chunks, into float32: the float64 intermediates of all 600,000 windows of a
        # 10,000-device run at once took 2.1 GiB more than the result (measured). The
        # generator's draws are consecutive, so the data is the same as in one piece.
        x = torch.empty((n, window, channels), dtype=torch.float32)
        for i in range(0, n, _CHUNK):
            j = min(n, i + _CHUNK)
            yc = y[i:j]
            signal = np.sin(
                freqs[yc][:, None, :] * t[None, :, None] + phases[yc][:, None, :] + shift[i:j]
            )
            noisy = amp[i:j] * signal + noise * rng.standard_normal((j - i, window, channels))
            x[i:j] = torch.from_numpy(noisy.astype(np.float32))
        return x, torch.tensor(y, dtype=torch.long)

    x, y = make(examples)
    x_test, y_test = make(test)
    return Task("sensor", x, y, x_test, y_test, classes, window, channels)


def channel_prediction_task(
    examples: int = 3000,
    test: int = 600,
    subcarriers: int = 8,
    window: int = 16,
    doppler_hz: float = 10.0,
    slot_s: float = 0.01,
    seed: int = 0,
) -> Task:
    """Sequences of |h|^2 in dB over ``subcarriers``; the target is the next slot's gains."""
    rng = np.random.default_rng(seed)
    total = examples + test
    gains = correlated_rayleigh(rng, (total, subcarriers), window + 1, doppler_hz, slot_s)
    db = 10 * np.log10(np.abs(gains) ** 2 + 1e-9)  # shape: slots x total x subcarriers
    db = np.transpose(db, (1, 0, 2))
    x = torch.tensor(db[:, :window] / 10.0, dtype=torch.float32)  # ~unit scale
    y = torch.tensor(db[:, window] / 10.0, dtype=torch.float32)
    return Task(
        "channel", x[:examples], y[:examples], x[examples:], y[examples:], 0, window, subcarriers
    )


def dirichlet_partition(
    labels: torch.Tensor, devices: int, alpha: float, rng: np.random.Generator, min_size: int = 2
) -> list[np.ndarray]:
    """Split example indices among ``devices``: per class, shares ~ Dirichlet(alpha).

    Smaller alpha gives each device fewer classes (more non-IID). Draws again until
    every device has at least ``min_size`` examples.
    """
    if alpha <= 0:
        raise TrainingConfigError(f"dirichlet alpha must be > 0, got {alpha}")
    y = labels.numpy()
    classes = np.unique(y) if y.ndim == 1 and y.dtype.kind in "iu" else None
    for _ in range(100):
        parts: list[list[int]] = [[] for _ in range(devices)]
        if classes is None:  # regression: split by a random order with Dirichlet sizes
            order = rng.permutation(len(y))
            cuts = (np.cumsum(rng.dirichlet([alpha] * devices)) * len(y)).astype(int)[:-1]
            for device, chunk in enumerate(np.split(order, cuts)):
                parts[device] = chunk.tolist()
        else:
            for c in classes:
                idx = rng.permutation(np.flatnonzero(y == c))
                cuts = (np.cumsum(rng.dirichlet([alpha] * devices)) * len(idx)).astype(int)[:-1]
                for device, chunk in enumerate(np.split(idx, cuts)):
                    parts[device].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.array(sorted(p)) for p in parts]
    raise TrainingConfigError(
        f"could not give each of {devices} devices {min_size} examples with alpha={alpha}"
    )
