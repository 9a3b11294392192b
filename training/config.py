"""Typed, frozen configuration, validated on construction; units are in the field names."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from .errors import TrainingConfigError

__all__ = [
    "MINILM_DIMENSIONS",
    "ChannelConfig",
    "EncoderConfig",
    "FederatedConfig",
    "LoraSettings",
    "PrivacyConfig",
]


def _check(obj: Any, name: str, ok: bool, rule: str) -> None:
    if not ok:
        raise TrainingConfigError(f"{type(obj).__name__}.{name} = {getattr(obj, name)!r}: {rule}")


def valid_threads(threads: object) -> bool:
    """``"auto"`` or an integer >= 1 (see :mod:`training.threads`)."""
    return threads == "auto" or (
        isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1
    )


def _positive(obj: Any, *names: str) -> None:
    for name in names:
        _check(obj, name, getattr(obj, name) > 0, "must be > 0")


@dataclass(frozen=True)
class EncoderConfig:
    """A BERT-style encoder built from a config (random weights) for tests and benchmarks."""

    layers: int = 2
    hidden: int = 64
    heads: int = 4
    intermediate: int = 128
    max_positions: int = 64

    def __post_init__(self) -> None:
        _positive(self, "layers", "hidden", "heads", "intermediate", "max_positions")
        _check(self, "hidden", self.hidden % self.heads == 0, "must be a multiple of heads")


#: all-MiniLM-L6-v2's dimensions (6 layers, hidden 384, 12 heads, intermediate 1536)
MINILM_DIMENSIONS = EncoderConfig(
    layers=6, hidden=384, heads=12, intermediate=1536, max_positions=512
)


@dataclass(frozen=True)
class LoraSettings:
    """LoRA on the server's encoder (peft). ``b_only`` freezes A and trains B alone."""

    rank: int = 8
    alpha: int = 16
    target_modules: tuple[str, ...] = ("query", "value")
    b_only: bool = False

    def __post_init__(self) -> None:
        _positive(self, "rank", "alpha")
        _check(self, "target_modules", len(self.target_modules) > 0, "must name a module")


@dataclass(frozen=True)
class PrivacyConfig:
    """What the uplink channel's noise must protect (:mod:`training.privacy`).

    With neither target, devices send at full power and epsilon is what the channel
    gives; with one, power control lowers each device's transmit power until the
    receiver's noise reaches it (``target_epsilon`` is calibrated over the job's planned
    rounds, assuming a device trains in every one of them). An uplink with no clip norm
    here (or ``FederatedConfig.clip_norm`` for the tokens) is sent digitally, noise-free,
    and is listed as outside epsilon.
    """

    target_epsilon: float = 0.0  # > 0: calibrate the noise to at most this epsilon
    target_noise_multiplier: float = 0.0  # > 0: hold the noise multiplier at least here
    delta: float = 1e-5
    gradient_clip_norm: float = 0.0  # > 0: pooled-gradient uplink clipped, analog, accounted
    over_the_air_clip_norm: float = 0.0  # > 0: device-module updates summed over the air

    def __post_init__(self) -> None:
        for name in (
            "target_epsilon",
            "target_noise_multiplier",
            "gradient_clip_norm",
            "over_the_air_clip_norm",
        ):
            _check(self, name, getattr(self, name) >= 0, "must be >= 0 (0 turns it off)")
        _check(
            self,
            "target_noise_multiplier",
            not (self.target_epsilon > 0 and self.target_noise_multiplier > 0),
            "set target_epsilon or target_noise_multiplier, not both",
        )
        _check(self, "delta", 0 < self.delta < 1, "must be in (0, 1), e.g. 1e-5")


@dataclass(frozen=True)
class FederatedConfig:
    """One split-federated-LoRA job."""

    devices: int = 10
    devices_per_round: int = 10
    rounds: int = 20
    local_steps: int = 5
    batch_size: int = 16
    learning_rate: float = 1e-2
    dirichlet_alpha: float = 0.5
    device_ranks: tuple[int, ...] | None = None  # per device; None: all at LoraSettings.rank
    link_dtype: Literal["float32", "float16"] = "float16"
    clip_norm: float = 0.0  # > 0: clip each uplinked activation to this L2 norm
    seed: int = 0
    # intra-op threads, set process-wide when a trainer is built (training.threads):
    # "auto" is one thread for a small model, torch's default for a large one
    threads: int | Literal["auto"] = "auto"
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)

    def __post_init__(self) -> None:
        _positive(
            self,
            "devices",
            "devices_per_round",
            "rounds",
            "local_steps",
            "batch_size",
            "learning_rate",
            "dirichlet_alpha",
        )
        _check(
            self,
            "devices_per_round",
            self.devices_per_round <= self.devices,
            f"cannot schedule more devices than exist ({self.devices})",
        )
        if self.device_ranks is not None:
            _check(
                self,
                "device_ranks",
                len(self.device_ranks) == self.devices,
                f"needs one rank per device ({self.devices})",
            )
            _check(
                self,
                "device_ranks",
                all(r > 0 for r in self.device_ranks),
                "every rank must be > 0",
            )
        _check(self, "clip_norm", self.clip_norm >= 0, "must be >= 0 (0 disables clipping)")
        targeted = self.privacy.target_epsilon > 0 or self.privacy.target_noise_multiplier > 0
        _check(
            self,
            "clip_norm",
            self.clip_norm > 0 or not targeted,
            "must be > 0 for a privacy target (unclipped activations have no sensitivity)",
        )
        _check(self, "threads", valid_threads(self.threads), 'must be "auto" or an integer >= 1')


@dataclass(frozen=True)
class ChannelConfig:
    """Wireless uplink model shared by all devices of a cell."""

    carrier_hz: float = 3.5e9
    noise_psd_dbm_per_hz: float = -174.0
    tx_power_w: float = 0.2
    path_loss_exponent: float = 3.5
    reference_loss_db: float = 38.0  # at 1 m
    doppler_hz: float = 10.0  # sets the time correlation of the fading
    slot_s: float = 0.01
    min_distance_m: float = 20.0
    max_distance_m: float = 300.0

    def __post_init__(self) -> None:
        _positive(
            self, "carrier_hz", "tx_power_w", "path_loss_exponent", "slot_s", "min_distance_m"
        )
        _check(
            self,
            "max_distance_m",
            self.max_distance_m >= self.min_distance_m,
            "must be >= min_distance_m",
        )
        _check(self, "doppler_hz", self.doppler_hz >= 0, "must be >= 0")


def describe(config: Any) -> dict[str, Any]:
    """A config as a plain dict (for JSON reports)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}
