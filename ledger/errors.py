"""The errors of the ledger package.

Every error raised on purpose by ``ledger`` derives from :class:`LedgerError`
and says what was wrong and what to do about it::

    LedgerError
    ├── ConfigError            bad input given to us (unknown backend name, bad path, ...)
    ├── ArtifactError          a compiled contract artifact is missing, stale or malformed
    ├── NodeError              a chain node cannot be reached or gave up (RPC down, timeout)
    │   └── NodeUnavailable    the node did not answer after the retries
    ├── TransactionReverted    the EVM reverted; ``reason`` carries the revert string
    ├── ChainDataError         persisted chain data is missing, truncated or inconsistent
    └── TestnetError           the local anvil testnet could not be started or stopped
"""

from __future__ import annotations

__all__ = [
    "NODE_ERRORS",
    "ArtifactError",
    "ChainDataError",
    "ConfigError",
    "LedgerError",
    "NodeError",
    "NodeUnavailable",
    "TestnetError",
    "TransactionReverted",
]


class LedgerError(Exception):
    """Root of every error the ledger package raises on purpose."""


class ConfigError(LedgerError, ValueError):
    """A value given to us is not acceptable; the message names it."""


class ArtifactError(LedgerError):
    """A compiled contract artifact is missing, stale or malformed."""


class NodeError(LedgerError):
    """A chain node misbehaved or cannot be reached."""


class NodeUnavailable(NodeError):
    """A chain node did not answer, even after retries."""


#: what a request to a node that is gone raises: ours (after the retries) or, from a
#: read that does not go through the client's retries, the connection's and the clock's
NODE_ERRORS: tuple[type[BaseException], ...] = (NodeError, OSError, TimeoutError)


class TransactionReverted(LedgerError):
    """The EVM reverted a call or a transaction.

    ``reason`` is the revert string (empty when the contract gave none) and
    ``tx_hash`` the hash of the mined transaction, when there was one.
    """

    def __init__(self, reason: str, tx_hash: str | None = None) -> None:
        self.reason = reason
        self.tx_hash = tx_hash
        where = f" (transaction {tx_hash})" if tx_hash else ""
        super().__init__(f"execution reverted: {reason or '<no reason>'}{where}")


class ChainDataError(LedgerError):
    """Persisted chain data is missing, truncated or does not verify."""


class TestnetError(LedgerError):
    """The local anvil testnet could not be started, reached or stopped."""

    __test__ = False  # not a pytest test class despite the name
