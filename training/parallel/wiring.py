"""Communication that autograd sees: the collectives of tensor and sequence parallelism.

Megatron's f / g pair (identity forward, all-reduce backward, and the reverse)
for tensor parallelism, and the all-gather of keys and values (reduce-scatter
of their gradients) for sequence parallelism, each an autograd function so one
backward pass moves exactly the bytes the planner counts.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from .model import Wiring

__all__ = ["SequenceWiring", "TensorWiring"]


class _Enter(torch.autograd.Function):
    """Megatron's f: identity forward, sum of the ranks' input gradients backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad


class _Exit(torch.autograd.Function):
    """Megatron's g: sum of the ranks' partial outputs forward, identity backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous().clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad


class _GatherSequence(torch.autograd.Function):
    """All ranks' chunks of the sequence (dim 1) forward; backward, each rank gets the sum
    over ranks of the gradient of its own chunk (reduce-scatter)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, world: int) -> torch.Tensor:
        ctx.world = world
        local = x.transpose(0, 1).contiguous()  # (s_local, b, c): gathers concatenate dim 0
        out = local.new_empty((world * local.shape[0], *local.shape[1:]))
        dist.all_gather_single(out, local)
        return out.transpose(0, 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        full = grad.transpose(0, 1).contiguous()
        out = full.new_empty((full.shape[0] // ctx.world, *full.shape[1:]))
        dist.reduce_scatter_single(out, full)
        return out.transpose(0, 1), None


class TensorWiring(Wiring):
    def enter(self, x: torch.Tensor) -> torch.Tensor:
        return _Enter.apply(x)  # type: ignore[no-any-return]

    def exit(self, x: torch.Tensor) -> torch.Tensor:
        return _Exit.apply(x)  # type: ignore[no-any-return]


class SequenceWiring(Wiring):
    def __init__(self, world: int) -> None:
        self.world = world

    def gather_keys(self, kv: torch.Tensor) -> torch.Tensor:
        return _GatherSequence.apply(kv, self.world)  # type: ignore[no-any-return]
