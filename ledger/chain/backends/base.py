"""The one interface every chain backend implements.

A backend owns a connection to one EVM chain and exposes it as an
:class:`web3.AsyncWeb3` plus the few dev-chain controls that JSON-RPC does
not standardise (block time, mining, snapshots). Everything above it — the
ledger client, the shards, the agents — talks to a ``ChainBackend`` and never
knows which implementation it has.

Grouped by concern, like eth-tester's ``backends/base.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from web3 import AsyncWeb3

__all__ = ["DEV_MNEMONIC", "ChainBackend", "dev_keys"]

#: The well-known development mnemonic; anvil funds its first accounts from it,
#: and the embedded backend funds the same accounts at genesis, so code and tests
#: see the same funded keys on both backends.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_ACCOUNTS = 10
DEV_BALANCE_WEI = 10_000 * 10**18

_dev_keys_cache: list[bytes] = []


def dev_keys(count: int = DEV_ACCOUNTS) -> list[bytes]:
    """The private keys of the funded development accounts (first ``count``)."""
    if len(_dev_keys_cache) < count:
        from eth_account import Account

        Account.enable_unaudited_hdwallet_features()
        _dev_keys_cache[:] = [
            bytes(Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)
            for i in range(max(count, DEV_ACCOUNTS))
        ]
    return _dev_keys_cache[:count]


class ChainBackend(ABC):
    """One EVM chain, reached in process or over JSON-RPC."""

    #: the name it is chosen by (``embedded``, ``rpc``)
    name: str = ""
    #: whether :meth:`snapshot` / :meth:`revert` work on this backend
    supports_snapshots: bool = True
    #: whether the chain outlives the process and can be reopened from disk
    persistent: bool = False

    # -- connection ----------------------------------------------------------
    @property
    @abstractmethod
    def web3(self) -> AsyncWeb3[Any]:
        """The AsyncWeb3 through which the chain is read and written."""

    @property
    @abstractmethod
    def describe(self) -> str:
        """A short human description (file path or URL), for errors and logs."""

    async def chain_id(self) -> int:
        return int(await self.web3.eth.chain_id)

    async def gas_price(self) -> int:
        """What a new client pays per gas: twice the head's base fee (room for it to rise
        between blocks) plus a 1 gwei tip. Not twice ``eth_gasPrice``: anvil suggests a
        price from recent tips, so each new client doubled it (13 clients took it from
        1 to 4,096 gwei, measured)."""
        head = await self.web3.eth.get_block("latest")
        return 2 * int(head.get("baseFeePerGas", 10**9)) + 10**9

    @abstractmethod
    async def close(self) -> None:
        """Release the connection (and, for embedded, flush to disk)."""

    # -- receipts, fast ---------------------------------------------------------
    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The receipt of ``tx_hash`` as plain Python values (see :func:`plain_receipt`),
        ``{}`` while it is not mined; None when this backend has no faster way than
        web3's ``get_transaction_receipt`` (whose result formatters cost about as much
        as executing a 100-lease settlement)."""
        return None

    async def send_and_wait(self, raw: bytes) -> dict[str, Any] | None:
        """Send a signed transaction and return its receipt (as :meth:`receipt` gives it)
        in one request, where the node can; None where it cannot, and then nothing was
        sent. Raises :class:`~ledger.errors.NodeError` when the node refuses it (the
        caller sends it again the ordinary way to learn why)."""
        return None

    async def block_receipts(self, number: int) -> list[dict[str, Any]] | None:
        """Every receipt of block ``number`` in one request, as :meth:`receipt` gives
        them; None when this backend cannot."""
        return None

    # -- time and mining -------------------------------------------------------
    @abstractmethod
    async def set_next_block_timestamp(self, timestamp: int) -> None:
        """The next block mined gets exactly this timestamp (must be in the future)."""

    @abstractmethod
    async def mine(self, timestamp: int | None = None) -> int:
        """Mine one block (at ``timestamp`` if given); returns its number."""

    # -- snapshots ---------------------------------------------------------------
    @abstractmethod
    async def snapshot(self) -> Any:
        """Remember the current head; :meth:`revert` goes back to it."""

    @abstractmethod
    async def revert(self, snapshot_id: Any) -> None:
        """Rewind the chain to a snapshot taken earlier."""

    async def __aenter__(self) -> ChainBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def plain_receipt(raw: dict[str, Any]) -> dict[str, Any]:
    """A JSON-RPC receipt (hex strings) as Python values: ints, bytes, checksum-free
    addresses; logs with ``address``, ``topics`` (bytes), ``data`` (bytes),
    ``blockNumber``, ``transactionHash`` (bytes), ``logIndex``."""

    def num(x: Any) -> int:
        return int(x, 16) if isinstance(x, str) else int(x)

    def raw_bytes(x: str) -> bytes:
        return bytes.fromhex(x.removeprefix("0x"))

    return {
        "transactionHash": raw_bytes(raw["transactionHash"]),
        "blockNumber": num(raw["blockNumber"]),
        "gasUsed": num(raw["gasUsed"]),
        "status": num(raw["status"]),
        "contractAddress": raw.get("contractAddress"),
        "logs": [
            {
                "address": log["address"],
                "topics": [raw_bytes(t) for t in log["topics"]],
                "data": raw_bytes(log["data"]),
                "blockNumber": num(log["blockNumber"]),
                "transactionHash": raw_bytes(log["transactionHash"]),
                "logIndex": num(log["logIndex"]),
            }
            for log in raw["logs"]
        ],
    }
