"""The transformer a pool trains, as numbers: parameters, FLOPs, activation bytes.

One shape serves the planner (estimates) and the executor (the real model in
:mod:`training.parallel.model`), so the two describe the same network: pre-LN
blocks (LayerNorm, multi-head attention without mask, LayerNorm, GELU MLP),
learned token and position embeddings, a final LayerNorm and a per-token
classification head. Counts below follow that model exactly; FLOPs count the
matrix products only (2 per multiply-add), and backward is taken as twice the
forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import _check, _positive

__all__ = ["MODES", "Mode", "TransformerShape"]

Mode = Literal["data", "sequence", "tensor", "pipeline"]
MODES: tuple[Mode, ...] = ("data", "sequence", "tensor", "pipeline")


@dataclass(frozen=True)
class TransformerShape:
    """A pre-LN transformer and the batch of one training step."""

    layers: int = 2
    hidden: int = 32
    heads: int = 4
    ffn: int = 64
    vocab: int = 64
    classes: int = 8
    seq_len: int = 16
    batch: int = 4
    microbatches: int = 2  # pipeline only: GPipe splits the batch into this many
    bytes_per_value: int = 4  # float32 weights, activations and messages
    optimizer_states: int = 2  # Adam keeps two values per parameter

    def __post_init__(self) -> None:
        _positive(
            self,
            "layers",
            "hidden",
            "heads",
            "ffn",
            "vocab",
            "classes",
            "seq_len",
            "batch",
            "microbatches",
            "bytes_per_value",
        )
        _check(self, "hidden", self.hidden % self.heads == 0, "must be a multiple of heads")
        _check(
            self,
            "microbatches",
            self.batch % self.microbatches == 0,
            f"must divide batch ({self.batch})",
        )

    # -- parameters ---------------------------------------------------------------------------
    @property
    def block_params(self) -> int:
        h, f = self.hidden, self.ffn
        return (3 * h * h + 3 * h) + (h * h + h) + (h * f + f) + (f * h + h) + 4 * h

    @property
    def embedding_params(self) -> int:
        return (self.vocab + self.seq_len) * self.hidden

    @property
    def head_params(self) -> int:
        return 2 * self.hidden + self.hidden * self.classes + self.classes

    @property
    def params(self) -> int:
        return self.layers * self.block_params + self.embedding_params + self.head_params

    def block_sharded_params(self, ways: int) -> int:
        """A block's parameters on one of ``ways`` tensor-parallel ranks (LayerNorms and the
        two output biases stay whole on every rank)."""
        h, f = self.hidden, self.ffn
        sharded = 3 * h * h + 3 * h + h * h + h * f + f + f * h
        return sharded // ways + 2 * h + 4 * h

    # -- FLOPs --------------------------------------------------------------------------------
    def block_forward_flops(self, tokens: int, keys: int, ways: int = 1) -> float:
        """Forward FLOPs of one block for ``tokens`` query tokens attending over ``keys``
        keys, with the heads and the MLP split ``ways`` ways (tensor parallelism)."""
        h, f = self.hidden, self.ffn
        linear = 2 * tokens * (3 * h * h + h * h + 2 * h * f)
        attention = 2 * 2 * tokens * keys * h
        return (linear + attention) / ways

    def head_forward_flops(self, tokens: int) -> float:
        return 2.0 * tokens * self.hidden * self.classes

    def step_flops(self) -> float:
        """FLOPs of one whole training step on one device (forward + backward)."""
        tokens = self.batch * self.seq_len
        forward = self.layers * self.block_forward_flops(tokens, self.seq_len)
        return 3 * (forward + self.head_forward_flops(tokens))

    # -- memory -------------------------------------------------------------------------------
    def state_bytes(self, params: int) -> int:
        """Weights, gradients and optimizer states of ``params`` parameters."""
        return params * self.bytes_per_value * (2 + self.optimizer_states)

    def block_activation_bytes(self, tokens: int, keys: int, ways: int = 1) -> int:
        """What backward keeps of one block's forward: inputs of both LayerNorms and of
        every product, the attention probabilities, the MLP's hidden layer twice."""
        h, f = self.hidden, self.ffn
        per_token = 4 * h + (3 * h + h) // ways + (2 * f) // ways
        probabilities = (self.heads // ways) * keys
        return tokens * (per_token + probabilities) * self.bytes_per_value

    @property
    def activation_message_bytes(self) -> int:
        """One hidden-state tensor of the whole batch: what crosses a cut or an all-reduce."""
        return self.batch * self.seq_len * self.hidden * self.bytes_per_value
