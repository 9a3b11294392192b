"""One region's configuration, from the scenario file to the chain.

:class:`RegionConfig` is the only description of a region: a scenario file is
read into it (``agents.scenario``), the tiered ledger deploys a ``RegionMarket``
from it (:meth:`RegionConfig.constructor_args`), its sequencer admits orders by
it, and ``ledger.json`` records it so a ledger can be reopened. Validated on
construction, so a bad region fails before any chain is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .mechanisms import Mechanism, mechanism_by_name

__all__ = ["RegionConfig"]

_ZERO32 = b"\0" * 32


@dataclass(frozen=True)
class RegionConfig:
    """A region shard: its mechanism, committee size, spectrum grid and lease timing."""

    region_id: int
    name: str = ""
    mechanism: str = "second_price"  # a registered mechanism's name (ledger.mechanisms)
    committee_size: int = 3
    threshold: int = 2  # committee signatures a settlement needs
    num_channels: int = 16
    channel_width_hz: int = 10_000_000
    spectrum_low_hz: int = 3_550_000_000
    protected_channels: tuple[int, ...] = ()  # incumbents' channels: never leased
    epoch_length_s: int = 60  # one time slot
    heartbeat_interval_s: int = 120
    claim_window_s: int = 600
    min_bond_wei: int = 10**15

    def __post_init__(self) -> None:
        mechanism_by_name(self.mechanism)  # unknown names fail here, with the choices
        where = f"region {self.region_id}"
        if self.region_id < 0:
            raise ConfigError(f"{where}: region id must be >= 0")
        if not 1 <= self.threshold <= self.committee_size:
            raise ConfigError(
                f"{where}: threshold {self.threshold} must be "
                f"1..committee_size ({self.committee_size})"
            )
        if not 1 <= self.num_channels <= 256:
            raise ConfigError(f"{where}: num_channels must be 1..256, got {self.num_channels}")
        if any(not 0 <= c < self.num_channels for c in self.protected_channels):
            raise ConfigError(f"{where}: protected channels must be in 0..{self.num_channels - 1}")
        if self.epoch_length_s <= 0:
            raise ConfigError(
                f"{where}: epoch_length_s must be positive, got {self.epoch_length_s}"
            )
        if self.channel_width_hz <= 0:
            raise ConfigError(
                f"{where}: channel_width_hz must be positive, got {self.channel_width_hz}"
            )

    @property
    def protected_mask(self) -> int:
        return sum(1 << c for c in set(self.protected_channels))

    @property
    def mechanism_rules(self) -> Mechanism:
        """The region's mechanism: what bids it takes and how it allocates."""
        return mechanism_by_name(self.mechanism)

    @property
    def mechanism_id(self) -> int:
        return self.mechanism_rules.mechanism_id

    def constructor_args(self, committee: Sequence[str]) -> list[Any]:
        """``RegionMarket``'s constructor arguments, with the committee's addresses."""
        return [
            self.region_id,
            list(committee),
            self.threshold,
            self.mechanism_id,
            _ZERO32,  # mechanism parameters: none of ours takes any yet
            self.spectrum_low_hz,
            self.channel_width_hz,
            self.num_channels,
            self.protected_mask,
            self.epoch_length_s,
            self.heartbeat_interval_s,
            self.claim_window_s,
            self.min_bond_wei,
        ]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RegionConfig:
        """The inverse of ``dataclasses.asdict`` (as ``ledger.json`` records it)."""
        return cls(**{**data, "protected_channels": tuple(data.get("protected_channels", ()))})
