"""The sharded, tiered EVM ledger of spectrum and compute leases.

Rooms (each a sub-package or module with one purpose):

- ``records``       pure Offer / Bid / LeaseRecord and their states (no web3)
- ``config``        one region's configuration, from scenario to chain
- ``eip712``        typed-data digests and signatures, as the contracts compute them
- ``mechanisms/``   pure allocation rules, one module each (no web3)
- ``keccak``        which keccak eth-hash uses, chosen by entry points (no web3)
- ``chain/``        backends, the client, contract bindings, logs, artifacts, testnets
- ``bindings/``     the RegionMarket and RootLedger contracts, typed
- ``region/``       a region at work: sequencer, committee, worker process, trader
- ``tiered``        the root chain plus every region, brought up and settled together
- ``crossregion``   leases that span regions: all or none
- ``audit/``        rebuild and check everything from the chains alone
- ``bench/``        ``specledger bench ledger``

Never imports torch: training lives in ``training/`` and meets the ledger only in
``agents/``. Importing this package loads no chain library; the rooms do.
"""

from __future__ import annotations

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
    "ArtifactError",
    "ChainDataError",
    "ConfigError",
    "LedgerError",
    "NodeError",
    "NodeUnavailable",
    "TestnetError",
    "TransactionReverted",
]
