"""Split federated LoRA, scheduling, channel and privacy models (torch only, no web3)."""

from __future__ import annotations

__all__: list[str] = []
