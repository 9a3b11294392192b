"""The sharded, tiered EVM ledger: backends, client, contract artifacts, testnets.

Never imports torch: training lives in ``training/`` and meets the ledger
only in ``agents/``.
"""

from __future__ import annotations

import importlib.util
import os

# eth-hash picks its keccak backend at the first hash and tries pycryptodome first;
# safe-pysha3 (a dependency, module ``sha3``) hashes about 4x faster, which speeds up
# py-evm, signing and log decoding alike (bench ledger: +6-9%). ETH_HASH_BACKEND set
# by the user wins; spawned region processes inherit the choice.
if "ETH_HASH_BACKEND" not in os.environ and importlib.util.find_spec("sha3") is not None:
    os.environ["ETH_HASH_BACKEND"] = "pysha3"

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
