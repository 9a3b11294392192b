"""The device <-> edge-server link of split learning.

Everything that crosses the cut goes through a :class:`Transport`, which counts
the bytes in each direction (at the link's dtype: float16 halves the bytes),
clips what the device sends up per example and adds the uplink channel's own
noise (the privacy mechanism, :mod:`training.privacy`). An uplink sent without
both (digitally, noise-free) is recorded in :attr:`Transport.outside_epsilon`,
so that what no epsilon covers is listed from what actually crossed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["Transport", "clip_per_example"]


def clip_per_example(x: torch.Tensor, clip_norm: float) -> torch.Tensor:
    """Each example (first dimension) scaled down to L2 norm at most ``clip_norm``."""
    norms = x.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (clip_norm / norms).clamp(max=1.0)
    return x * scale.view(-1, *([1] * (x.dim() - 1)))


@dataclass
class Transport:
    """Counts bytes both ways; clips and adds Gaussian channel noise to the uplink.

    ``clip_norm`` / ``noise_std`` apply to the tokens, ``gradient_clip_norm`` /
    ``gradient_noise_std`` to the pooled-vector gradients (0: sent noise-free).
    """

    link_dtype: torch.dtype = torch.float32
    noise_std: float = 0.0
    clip_norm: float = 0.0  # > 0: clip each example's uplinked tensor to this L2 norm
    generator: torch.Generator | None = None
    gradient_clip_norm: float = 0.0
    gradient_noise_std: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    messages: list[tuple[str, str, int]] = field(default_factory=list)
    outside_epsilon: set[str] = field(default_factory=set)

    def _encode(self, tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
        on_link = tensor.detach().to(self.link_dtype)
        return on_link.to(tensor.dtype), on_link.numel() * on_link.element_size()

    def _send_up(
        self, x: torch.Tensor, what: str, clip_norm: float, noise_std: float
    ) -> torch.Tensor:
        if clip_norm > 0:
            x = clip_per_example(x, clip_norm)
        received, size = self._encode(x)
        if clip_norm > 0 and noise_std > 0:
            received = received + noise_std * torch.randn(
                received.shape, generator=self.generator, dtype=received.dtype
            )
        else:
            self.outside_epsilon.add(what)
        self.bytes_up += size
        self.messages.append(("up", what, size))
        return received

    def up(
        self, tensor: torch.Tensor, what: str = "activations", noisy: bool = True
    ) -> torch.Tensor:
        """Device -> server, clipped and noisy at the token settings (``noisy=False``:
        digital and noise-free, listed outside epsilon)."""
        clip, std = (self.clip_norm, self.noise_std) if noisy else (0.0, 0.0)
        return self._send_up(tensor.detach(), what, clip, std)

    def up_gradient(self, tensor: torch.Tensor, what: str = "pooled-gradient") -> torch.Tensor:
        """Device -> server: the gradients of the pooled vectors (they carry the labels),
        clipped per example and noisy at the gradient settings."""
        return self._send_up(
            tensor.detach(), what, self.gradient_clip_norm, self.gradient_noise_std
        )

    def down(self, tensor: torch.Tensor, what: str = "activations") -> torch.Tensor:
        """Server -> device."""
        received, size = self._encode(tensor)
        self.bytes_down += size
        self.messages.append(("down", what, size))
        return received

    def count_upload(
        self, tensors: list[torch.Tensor], what: str = "parameters", noisy: bool = False
    ) -> int:
        """Count an upload of parameters for aggregation at the tensors' own precision:
        digital and noise-free (listed outside epsilon), or ``noisy``: analog over the
        air, its noise drawn on the sum by the aggregator (:mod:`training.federated`)."""
        size = sum(t.numel() * t.element_size() for t in tensors)
        self.bytes_up += size
        self.messages.append(("up", what, size))
        if not noisy:
            self.outside_epsilon.add(what)
        return size

    def reset(self) -> None:
        self.bytes_up = self.bytes_down = 0
        self.messages.clear()
        self.outside_epsilon.clear()
