"""The sharded, tiered EVM ledger: backends, client, contract artifacts, testnets.

Never imports torch: training lives in ``training/`` and meets the ledger
only in ``agents/``.
"""

from __future__ import annotations

from .artifacts import Artifact, load_artifact
from .backends import ChainBackend, dev_keys, open_backend
from .client import ContractBinding, Event, LedgerClient, LogIndex, NonceManager, Receipt
from .errors import (
    ArtifactError,
    ChainDataError,
    ConfigError,
    LedgerError,
    NodeError,
    NodeUnavailable,
    TestnetError,
    TransactionReverted,
)

__all__ = [
    "Artifact",
    "ArtifactError",
    "ChainBackend",
    "ChainDataError",
    "ConfigError",
    "ContractBinding",
    "Event",
    "LedgerClient",
    "LedgerError",
    "LogIndex",
    "NodeError",
    "NodeUnavailable",
    "NonceManager",
    "Receipt",
    "TestnetError",
    "TransactionReverted",
    "dev_keys",
    "load_artifact",
    "open_backend",
]
