"""The energy of one training step on a pool: compute, idle, radio base power, and bits.

Each device taking part draws, over one step of ``step_s`` seconds:

- ``active_w`` while it computes (``busy`` seconds);
- ``link_w`` while it sends (bytes sent over its link rate): the radio's base power, ``b``
  in Huang et al.'s model (MobiSys 2012; see :mod:`training.parallel.devices`);
- ``idle_w`` for the rest of the step;
- ``tx_j_per_bit`` on every bit it sends and ``rx_j_per_bit`` on every bit it receives
  (Huang et al.'s ``a_u`` and ``a_d``): the radio's energy per bit moved, on top of its
  base power. Without it a faster link looked free however many bytes a mode moved.

The collectives the planner counts are rings and a chain: in a ring every rank receives
as many bytes as it sends, and a pipeline stage receives the cut's activations and
gradients it passes on, so a device's received bytes equal its sent bytes unless the
caller says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Powered", "StepEnergy", "step_energy"]


class Powered(Protocol):
    """What the energy model reads of a device (a :class:`~.planner.DeviceProfile`)."""

    @property
    def link_bytes_per_s(self) -> float: ...
    @property
    def idle_w(self) -> float: ...
    @property
    def active_w(self) -> float: ...
    @property
    def link_w(self) -> float: ...
    @property
    def tx_j_per_bit(self) -> float: ...
    @property
    def rx_j_per_bit(self) -> float: ...


@dataclass(frozen=True)
class StepEnergy:
    """One step's energy over every device taking part, by where it goes."""

    compute_j: float
    idle_j: float
    link_j: float  # radio base power while sending
    radio_j: float  # per bit sent and received

    @property
    def total_j(self) -> float:
        return self.compute_j + self.idle_j + self.link_j + self.radio_j


def step_energy(
    devices: Sequence[Powered],
    busy_s: Sequence[float],
    sent_bytes: Sequence[float],
    step_s: float,
    received_bytes: Sequence[float] | None = None,
) -> StepEnergy:
    """The energy of one step: device ``i`` computes ``busy_s[i]`` seconds, sends
    ``sent_bytes[i]`` and receives ``received_bytes[i]`` (by default what it sends)."""
    received = sent_bytes if received_bytes is None else received_bytes
    compute = idle = link = radio = 0.0
    for d, busy, out, into in zip(devices, busy_s, sent_bytes, received, strict=True):
        sending = out / d.link_bytes_per_s
        compute += d.active_w * busy
        link += d.link_w * sending
        idle += d.idle_w * max(0.0, step_s - busy - sending)
        radio += 8 * (out * d.tx_j_per_bit + into * d.rx_j_per_bit)
    return StepEnergy(compute, idle, link, radio)
