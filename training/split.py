"""One split-learning training step, with every tensor crossing a :class:`Transport`.

U-shaped split: the device embeds its inputs and sends tokens up; the server
runs the frozen encoder + LoRA and sends the pooled vector down; the device
applies its head and the loss, sends the gradient of the pooled vector up; the
server back-propagates through the encoder (LoRA gradients) and sends the
gradient of the tokens down; the device back-propagates through its embedding.
Both uplinks (tokens, pooled gradients) go through the transport's clipping and
channel noise when it has them set (:mod:`training.transport`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .models import DeviceModules, ServerModel
from .transport import Transport

__all__ = ["loss_function", "monolithic_step", "split_step"]


def loss_function(num_classes: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    return nn.functional.cross_entropy if num_classes > 0 else nn.functional.mse_loss


def split_step(
    device: DeviceModules,
    server: ServerModel,
    transport: Transport,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward through the cut; gradients land in device and LoRA params."""
    tokens = device.embed(x)
    tokens_at_server = transport.up(tokens, "tokens").requires_grad_(True)
    pooled = server(tokens_at_server)
    pooled_at_device = transport.down(pooled, "pooled").requires_grad_(True)
    logits = device.head(pooled_at_device)
    loss = loss_fn(logits, y)
    loss.backward()
    assert pooled_at_device.grad is not None
    # the pooled gradients carry the labels: clipped and noisy, or listed outside epsilon
    pooled.backward(transport.up_gradient(pooled_at_device.grad))
    assert tokens_at_server.grad is not None
    tokens.backward(transport.down(tokens_at_server.grad, "token-gradient"))
    return loss.detach(), logits.detach()


def monolithic_step(
    device: DeviceModules,
    server: ServerModel,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same model in one piece, for the equivalence test and the benchmark."""
    logits = device.head(server(device.embed(x)))
    loss = loss_fn(logits, y)
    loss.backward()
    return loss.detach(), logits.detach()
