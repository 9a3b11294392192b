"""The device <-> edge-server link of split learning.

Everything that crosses the cut goes through a :class:`Transport`, which counts
the bytes in each direction (at the link's dtype: float16 halves the bytes),
can clip what the device sends up, and can add the uplink channel's own noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Transport"]


@dataclass
class Transport:
    """Counts bytes both ways; ``noise_std`` adds Gaussian channel noise to the uplink."""

    link_dtype: torch.dtype = torch.float32
    noise_std: float = 0.0
    clip_norm: float = 0.0  # > 0: clip each example's uplinked tensor to this L2 norm
    generator: torch.Generator | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    messages: list[tuple[str, str, int]] = field(default_factory=list)

    def _encode(self, tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
        on_link = tensor.detach().to(self.link_dtype)
        return on_link.to(tensor.dtype), on_link.numel() * on_link.element_size()

    def up(
        self, tensor: torch.Tensor, what: str = "activations", noisy: bool = True
    ) -> torch.Tensor:
        """Device -> server. Clipping and channel noise apply to activations only."""
        x = tensor.detach()
        if noisy and self.clip_norm > 0:
            norms = x.flatten(1).norm(dim=1).clamp_min(1e-12)
            scale = (self.clip_norm / norms).clamp(max=1.0)
            x = x * scale.view(-1, *([1] * (x.dim() - 1)))
        received, size = self._encode(x)
        if noisy and self.noise_std > 0:
            received = received + self.noise_std * torch.randn(
                received.shape, generator=self.generator, dtype=received.dtype
            )
        self.bytes_up += size
        self.messages.append(("up", what, size))
        return received

    def down(self, tensor: torch.Tensor, what: str = "activations") -> torch.Tensor:
        """Server -> device."""
        received, size = self._encode(tensor)
        self.bytes_down += size
        self.messages.append(("down", what, size))
        return received

    def count_upload(self, tensors: list[torch.Tensor], what: str = "parameters") -> int:
        """Count an upload of parameters for aggregation: digital, no noise, at the
        tensors' own precision (they are averaged exactly as trained)."""
        size = sum(t.numel() * t.element_size() for t in tensors)
        self.bytes_up += size
        self.messages.append(("up", what, size))
        return size

    def reset(self) -> None:
        self.bytes_up = self.bytes_down = 0
        self.messages.clear()
