"""The transformer every parallelism runs, written once.

A :class:`Block` takes a :class:`Wiring` that says where a parallelism talks:
``enter``/``exit`` around the head- and column-split products (tensor
parallelism: Megatron's f and g operators) and ``gather_keys`` for attention
over a sequence split across ranks (sequence parallelism). The single-process
reference, data and pipeline parallelism use the default wiring, which does
nothing. :func:`shard_block` cuts a reference block into one tensor-parallel
rank's part, so every rank starts from the reference's weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .shapes import TransformerShape

__all__ = ["Block", "Reference", "Wiring", "shard_block", "tensor_slices"]


class Wiring:
    """No communication: one process holds the whole block and the whole sequence."""

    def enter(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def exit(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def gather_keys(self, kv: torch.Tensor) -> torch.Tensor:
        return kv


class Block(nn.Module):
    """Pre-LN block; ``heads`` and ``ffn`` are this rank's share under tensor parallelism."""

    def __init__(self, hidden: int, heads: int, ffn: int, head_dim: int) -> None:
        super().__init__()
        local = heads * head_dim
        self.heads, self.head_dim = heads, head_dim
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * local)
        self.proj = nn.Linear(local, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, ffn)
        self.fc2 = nn.Linear(ffn, hidden)

    def forward(self, x: torch.Tensor, wiring: Wiring) -> torch.Tensor:
        b, s, _ = x.shape
        local = self.heads * self.head_dim
        q, kv = self.qkv(wiring.enter(self.ln1(x))).split([local, 2 * local], dim=-1)
        kv = wiring.gather_keys(kv)
        k, v = kv.split(local, dim=-1)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, t.shape[1], self.heads, self.head_dim).transpose(1, 2)

        scores = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(self.head_dim)
        attended = (scores.softmax(dim=-1) @ heads(v)).transpose(1, 2).reshape(b, s, local)
        # the output biases go on after the reduction, so they count once
        x = x + wiring.exit(F.linear(attended, self.proj.weight)) + self.proj.bias
        hidden = F.gelu(self.fc1(wiring.enter(self.ln2(x))))
        return x + wiring.exit(F.linear(hidden, self.fc2.weight)) + self.fc2.bias


class Reference(nn.Module):
    """The whole model in one process; its parameters seed every parallel run."""

    def __init__(self, shape: TransformerShape, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.shape = shape
        head_dim = shape.hidden // shape.heads
        self.embed = nn.Embedding(shape.vocab, shape.hidden)
        self.pos = nn.Embedding(shape.seq_len, shape.hidden)
        self.layers = nn.ModuleList(
            Block(shape.hidden, shape.heads, shape.ffn, head_dim) for _ in range(shape.layers)
        )
        self.norm = nn.LayerNorm(shape.hidden)
        self.head = nn.Linear(shape.hidden, shape.classes)

    def embed_tokens(self, tokens: torch.Tensor, first_position: int = 0) -> torch.Tensor:
        positions = torch.arange(first_position, first_position + tokens.shape[1])
        return self.embed(tokens) + self.pos(positions)

    def loss_sum(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed token losses: every parallelism divides by the step's total token count,
        so summing the ranks' gradients gives the reference's gradient."""
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum")

    def forward(self, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(tokens)
        wiring = Wiring()
        for block in self.layers:
            x = block(x, wiring)
        return self.loss_sum(x, labels) / labels.numel()


def tensor_slices(shape: TransformerShape, rank: int, ways: int) -> dict[str, tuple[int, slice]]:
    """Which part of each split block parameter ``rank`` holds: name -> (dim, slice)."""
    h, f = shape.hidden, shape.ffn
    cols = slice(rank * h // ways, (rank + 1) * h // ways)
    ffn = slice(rank * f // ways, (rank + 1) * f // ways)
    return {
        "proj.weight": (1, cols),
        "fc1.weight": (0, ffn),
        "fc1.bias": (0, ffn),
        "fc2.weight": (1, ffn),
    }


def _qkv_rows(shape: TransformerShape, rank: int, ways: int) -> torch.Tensor:
    h = shape.hidden
    part = torch.arange(rank * h // ways, (rank + 1) * h // ways)
    return torch.cat([part, part + h, part + 2 * h])


def shard_block(block: Block, shape: TransformerShape, rank: int, ways: int) -> Block:
    """Rank ``rank``'s share of ``block``: its heads' rows of qkv and columns of proj, its
    slice of the MLP; LayerNorms and the output biases whole."""
    head_dim = shape.hidden // shape.heads
    part = Block(shape.hidden, shape.heads // ways, shape.ffn // ways, head_dim)
    rows = _qkv_rows(shape, rank, ways)
    with torch.no_grad():
        for name, p in part.named_parameters():
            full = block.get_parameter(name)
            if name.startswith("qkv."):
                p.copy_(full[rows])
            elif name in tensor_slices(shape, rank, ways):
                dim, cut = tensor_slices(shape, rank, ways)[name]
                p.copy_(full.narrow(dim, cut.start, cut.stop - cut.start))
            else:
                p.copy_(full)
    return part


def reference_part(
    full: torch.Tensor, name: str, shape: TransformerShape, rank: int, ways: int
) -> torch.Tensor:
    """The piece of a reference block tensor (weight or gradient) that ``rank`` holds."""
    if name.startswith("qkv."):
        return full[_qkv_rows(shape, rank, ways)]
    cut = tensor_slices(shape, rank, ways).get(name)
    if cut is None:
        return full
    dim, part = cut
    return full.narrow(dim, part.start, part.stop - part.start)
