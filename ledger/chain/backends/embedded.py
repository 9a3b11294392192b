"""The ``embedded`` backend: eth-tester + py-evm in this process, persisted to SQLite.

Each chain lives in ``<directory>/<name>.chain.sqlite``. Opening a path that
exists reopens that chain — in this process or another one — with every block,
receipt and log intact (py-evm stores all of them in its key-value database,
which :class:`~ledger.chain.backends._sqlite_db.SQLiteKV` writes to the file after
every mined block).

Blocks are mined one per transaction (eth-tester's auto-mining: with it off,
eth-tester replays the pending block on every send). ``prevrandao`` is derived
from the parent hash instead of being random, so the same transactions at the
same timestamps give the same block hashes on every run.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, cast

from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.vm.forks import PragueVM
from eth_keys import keys
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionNotFound as TesterTransactionNotFound
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_tester.utils.address import generate_contract_address
from eth_utils import keccak, to_canonical_address
from web3 import AsyncWeb3
from web3.providers.eth_tester import AsyncEthereumTesterProvider

from ...errors import ChainDataError, ConfigError
from ._sqlite_db import SQLiteKV
from .base import DEV_BALANCE_WEI, ChainBackend, dev_keys

__all__ = ["EmbeddedBackend", "default_chain_id"]

DEFAULT_GAS_LIMIT = 200_000_000
_FORMAT = "specledger-embedded-1"


def default_chain_id(name: str) -> int:
    """A stable chain id for a chain name, distinct for distinct names in practice."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
    return 500_000 + digest % 400_000


def _chain_class(chain_id: int) -> type[MiningChain]:
    class SpecledgerChain(MiningChain):
        vm_configuration = ((cast(Any, 0), PragueVM),)

        def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
            # keep the gas limit constant, as eth-tester's own chain does
            header_params["gas_limit"] = parent_header.gas_limit
            return super().create_header_from_parent(parent_header, **header_params)

        def get_transaction_builder(self) -> Any:
            return self.get_vm().get_transaction_builder()

    SpecledgerChain.chain_id = chain_id
    return SpecledgerChain


class _PersistingPyEVM(PyEVMBackend):
    """eth-tester's py-evm backend over our own chain object and database."""

    def __init__(self, chain: MiningChain, kv: SQLiteKV | None, account_keys: tuple[Any, ...]):
        # PyEVMBackend.__init__ would build a fresh in-memory chain; we bring ours.
        self.chain = chain
        self.account_keys = account_keys
        self._kv = kv

    def _find(self, transaction_hash: bytes) -> tuple[Any, Any, int]:
        """(block, transaction, index) through py-evm's hash index; eth-tester's own
        lookup scans every block from the head, which grows with the chain."""
        pending = self.chain.get_block()
        for index, tx in enumerate(pending.transactions):
            if tx.hash == transaction_hash:
                return pending, tx, index
        try:
            number, index = self.chain.chaindb.get_transaction_index(cast(Any, transaction_hash))
        except EVMTransactionNotFound:
            raise TesterTransactionNotFound(
                f"No transaction found for transaction hash: 0x{transaction_hash.hex()}"
            ) from None
        block = self.chain.get_canonical_block_by_number(number)
        return block, block.transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, tx, index = self._find(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction(block, tx, index, is_pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, tx, index = self._find(transaction_hash)
        is_pending = block.number == self.chain.get_block().number
        return serialize_transaction_receipt(
            block,
            block.get_receipts(self.chain.chaindb),
            tx,
            index,
            is_pending,
            self.chain.get_vm(),
        )

    def plain_receipts(self, block: Any) -> list[dict[str, Any]]:
        """The block's receipts as ``plain_receipt`` gives them, straight from py-evm.

        The same values as eth-tester's ``serialize_transaction_receipt`` (a test checks
        it), without re-hashing the transaction for every log or recovering its sender
        when it created no contract: about 0.2 ms a log less on a settlement."""
        receipts = block.get_receipts(self.chain.chaindb)
        out = []
        previous_gas = 0
        for tx, receipt in zip(block.transactions, receipts, strict=True):
            tx_hash = tx.hash
            address = generate_contract_address(tx.sender, tx.nonce) if tx.to == b"" else None
            out.append(
                {
                    "transactionHash": tx_hash,
                    "blockNumber": block.number,
                    "gasUsed": receipt.gas_used - previous_gas,
                    "status": int.from_bytes(receipt.state_root, "big"),
                    "contractAddress": "0x" + address.hex() if address else None,
                    "logs": [
                        {
                            "address": "0x" + log.address.hex(),
                            "topics": [t.to_bytes(32, "big") for t in log.topics],
                            "data": log.data,
                            "blockNumber": block.number,
                            "transactionHash": tx_hash,
                            "logIndex": index,
                        }
                        for index, log in enumerate(receipt.logs)
                    ],
                }
            )
            previous_gas = receipt.gas_used
        return out

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        raise ChainDataError("an embedded chain cannot be reset; create a new one instead")

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = b"\0" * 20) -> tuple[bytes, ...]:
        hashes = []
        for _ in range(num_blocks):
            pending = self.chain.header
            block = self.chain.mine_block(
                coinbase=coinbase,
                mix_hash=keccak(pending.parent_hash + pending.block_number.to_bytes(32, "big")),
                blob_gas_used=0,
            )
            hashes.append(block.hash)
        if self._kv is not None:
            self._kv.flush()
        return tuple(hashes)

    def revert_to_snapshot(self, snapshot: Any) -> None:
        super().revert_to_snapshot(snapshot)
        if self._kv is not None:
            self._kv.flush()


class EmbeddedBackend(ChainBackend):
    """An in-process py-evm chain, persisted to ``directory`` (or in memory)."""

    name = "embedded"
    persistent = True

    def __init__(
        self,
        directory: Path | str | None,
        *,
        chain_name: str = "chain",
        chain_id: int | None = None,
        genesis_timestamp: int | None = None,
        gas_limit: int = DEFAULT_GAS_LIMIT,
        read_only: bool = False,
    ) -> None:
        self.chain_name = chain_name
        self._kv: SQLiteKV | None = None
        account_keys = tuple(keys.PrivateKey(k) for k in dev_keys())
        if directory is None:
            self.path: Path | None = None
            self.persistent = False
            chain = self._genesis(AtomicDB(), chain_id, genesis_timestamp, gas_limit, account_keys)
        else:
            directory = Path(directory)
            if directory.exists() and not directory.is_dir():
                raise ConfigError(f"embedded chain directory {directory} is a file, not a folder")
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / f"{chain_name}.chain.sqlite"
            existed = self.path.exists()
            if read_only and not existed:
                raise ChainDataError(f"no embedded chain {chain_name!r} in {directory}")
            self._kv = SQLiteKV(self.path, read_only=read_only)
            if existed and self._kv.get_meta("format") is not None:
                chain = self._reopen(self._kv, chain_id)
            elif read_only:
                raise ChainDataError(f"{self.path} holds no chain (was its creation interrupted?)")
            else:
                cid = chain_id if chain_id is not None else default_chain_id(chain_name)
                chain = self._genesis(
                    AtomicDB(self._kv), cid, genesis_timestamp, gas_limit, account_keys
                )
                self._kv.flush()
                # the meta rows go last: a file without them is an unfinished creation
                self._kv.set_meta("chain_id", str(cid))
                self._kv.set_meta("name", chain_name)
                self._kv.set_meta("format", _FORMAT)
        self.tester = EthereumTester(backend=_PersistingPyEVM(chain, self._kv, account_keys))
        provider = AsyncEthereumTesterProvider()
        provider.ethereum_tester = self.tester
        # web3's tester endpoints answer eth_chainId with a constant; answer ours
        chain_id_now = int(chain.chain_id)
        provider.api_endpoints = {
            **provider.api_endpoints,
            "eth": {**provider.api_endpoints["eth"], "chainId": lambda *_: chain_id_now},
        }
        self._web3 = AsyncWeb3(provider)

    @staticmethod
    def _genesis(
        db: AtomicDB,
        chain_id: int | None,
        timestamp: int | None,
        gas_limit: int,
        account_keys: tuple[Any, ...],
    ) -> MiningChain:
        cid = chain_id if chain_id is not None else default_chain_id("chain")
        params = PyEVMBackend.generate_genesis_params(
            overrides={
                "timestamp": int(timestamp if timestamp is not None else time.time()),
                "gas_limit": gas_limit,
            }
        )
        state = {
            to_canonical_address(k.public_key.to_checksum_address()): {
                "balance": DEV_BALANCE_WEI,
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for k in account_keys
        }
        return cast(MiningChain, _chain_class(cid).from_genesis(db, params, cast(Any, state)))

    @staticmethod
    def _reopen(kv: SQLiteKV, chain_id: int | None) -> MiningChain:
        stored = int(kv.get_meta("chain_id") or 0)
        if chain_id is not None and chain_id != stored:
            raise ConfigError(
                f"{kv.path} holds chain id {stored}, not the {chain_id} that was asked for"
            )
        try:
            return _chain_class(stored)(AtomicDB(kv))
        except Exception as exc:  # py-evm raises KeyError/HeaderNotFound on a damaged db
            raise ChainDataError(f"{kv.path} is damaged and cannot be reopened: {exc!r}") from exc

    # -- ChainBackend ------------------------------------------------------------
    @property
    def web3(self) -> AsyncWeb3[Any]:
        return self._web3

    @property
    def evm_chain(self) -> MiningChain:
        """The py-evm chain itself, for reading what is stored (the audit re-verifies it)."""
        return cast(_PersistingPyEVM, self.tester.backend).chain

    @property
    def describe(self) -> str:
        return f"embedded chain {self.chain_name!r} at {self.path or '<memory>'}"

    async def close(self) -> None:
        if self._kv is not None:
            self._kv.close()
            self._kv = None

    # eth-tester's normalizers and web3's result formatters took 0.7 ms per log of a
    # settlement receipt; these read py-evm's receipts directly
    async def gas_price(self) -> int:
        """Twice eth-tester's own price, which never moves: the same on every run, so a
        resumed run sends byte for byte the transactions of the uninterrupted one (a price
        from the head's base fee would differ after a resume)."""
        return 2 * int(await self.web3.eth.gas_price)

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        backend = cast(_PersistingPyEVM, self.tester.backend)
        try:
            block, _, index = backend._find(bytes.fromhex(tx_hash.removeprefix("0x")))
        except TesterTransactionNotFound:
            return {}
        if block.number == backend.chain.get_block().number:
            return {}  # still pending
        return backend.plain_receipts(block)[index]

    async def block_receipts(self, number: int) -> list[dict[str, Any]] | None:
        backend = cast(_PersistingPyEVM, self.tester.backend)
        block = backend.chain.get_canonical_block_by_number(cast(Any, number))
        return backend.plain_receipts(block)

    async def set_next_block_timestamp(self, timestamp: int) -> None:
        chain = self.tester.backend.chain
        parent = chain.get_canonical_head()
        if timestamp <= parent.timestamp:
            raise ConfigError(
                f"block timestamp {timestamp} is not after the head's {parent.timestamp}"
            )
        chain.header = chain.header.copy(timestamp=timestamp)

    async def mine(self, timestamp: int | None = None) -> int:
        if timestamp is not None:
            await self.set_next_block_timestamp(timestamp)
        self.tester.mine_blocks(1)
        return int(self.tester.backend.chain.get_canonical_head().block_number)

    async def snapshot(self) -> int:
        return int(self.tester.take_snapshot())

    async def revert(self, snapshot_id: Any) -> None:
        try:
            self.tester.revert_to_snapshot(snapshot_id)
        except TesterValidationError as exc:
            raise ConfigError(f"no snapshot {snapshot_id!r} on {self.describe}") from exc
