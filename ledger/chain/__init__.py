"""Chains and how we talk to them: backends, the client, contract bindings, logs,
artifacts, factories and local anvil testnets.

Nothing here knows the market: ``chain`` imports nothing from ``bindings``,
``region`` or ``audit`` (tests/test_layers.py checks it).
"""

from __future__ import annotations

from ..keccak import keccak_backend, use_fast_keccak  # lives outside chain/: cheap to import
from .artifacts import Artifact, load_artifact
from .backends import ChainBackend, dev_keys, open_backend
from .client import ContractBinding, LedgerClient, NonceManager
from .events import Event, Receipt
from .factory import ChainFactory, EmbeddedChains, RpcChains, chains_from_record, root_first
from .logs import LogIndex
from .reverts import revert_reason

__all__ = [
    "Artifact",
    "ChainBackend",
    "ChainFactory",
    "ContractBinding",
    "EmbeddedChains",
    "Event",
    "LedgerClient",
    "LogIndex",
    "NonceManager",
    "Receipt",
    "RpcChains",
    "chains_from_record",
    "dev_keys",
    "keccak_backend",
    "load_artifact",
    "open_backend",
    "revert_reason",
    "root_first",
    "use_fast_keccak",
]
