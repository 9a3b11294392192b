"""The async ledger client: signs, sends and waits for transactions on any chain backend.

- transactions are signed locally (eth-account; with coincurve installed the
  signing is ~8x faster) and sent raw, so nodes never hold our keys;
- a :class:`NonceManager` hands out nonces under a lock, so many concurrent
  sends from one account neither collide nor leave gaps;
- transient RPC failures are retried with back-off, and a node that stays
  gone raises :class:`~ledger.errors.NodeUnavailable` naming it;
- reverts of calls and of mined transactions surface as one error,
  :class:`~ledger.errors.TransactionReverted`, carrying the reason;
- events are decoded from receipts as transactions are mined, and
  :class:`LogIndex` follows new blocks to index everything else, instead of
  asking the node for ``eth_getLogs`` over a long range (slow on py-evm).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import (
    event_abi_to_log_topic,
    function_signature_to_4byte_selector,
    get_abi_input_types,
    keccak,
    to_checksum_address,
)
from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound

from ..addresses import checksum_address
from ..errors import (
    ConfigError,
    LedgerError,
    NodeError,
    NodeUnavailable,
    TransactionReverted,
)
from .artifacts import Artifact, load_artifact
from .backends.base import ChainBackend
from .backends.rpc import TRANSIENT_ERRORS
from .events import Event, LogDecoder, NotWords, Receipt, decode_logs, receipt_of, words
from .reverts import revert_reason

__all__ = ["ContractBinding", "LedgerClient", "NonceManager"]

T = TypeVar("T")

_NONCE_RETRIES = 3


def _is_nonce_error(exc: BaseException) -> bool:
    """A node refused a transaction for its nonce (eth-tester and anvil word it differently)."""
    return "nonce" in str(exc).lower()


_LOST: tuple[type[BaseException], ...] = (asyncio.CancelledError, *TRANSIENT_ERRORS)
_UNREADABLE: tuple[type[BaseException], ...] = (LedgerError, *TRANSIENT_ERRORS)


async def _noting_lost(request: Awaitable[T], lost: list[BaseException]) -> T:
    """Await a send; a transient failure or a timeout is noted in ``lost`` (the node may
    have taken the transaction even though its answer never came), then raised."""
    try:
        return await request
    except _LOST as exc:
        lost.append(exc)
        raise


def _is_known_error(exc: BaseException) -> bool:
    """A node already has this very transaction (sent before, by a retried request)."""
    text = str(exc).lower()
    return "already known" in text or "already imported" in text


class NonceManager:
    """Hands out the nonces of one account: in order, without gaps or repeats.

    A nonce is taken and the transaction carrying it is sent under one lock,
    so nonce n always reaches the node before n + 1. If a send fails for good,
    the counter is read again from the node so the next send fills the gap.
    """

    def __init__(self, web3: AsyncWeb3[Any], address: str) -> None:
        self._web3 = web3
        self._address = address
        self._next: int | None = None
        self.lock = asyncio.Lock()

    async def take(self) -> int:
        """The next nonce; call with :attr:`lock` held."""
        if self._next is None:
            self._next = int(
                await self._web3.eth.get_transaction_count(cast(Any, self._address), "pending")
            )
        nonce = self._next
        self._next += 1
        return nonce

    def forget(self) -> None:
        """Re-read the nonce from the node on the next :meth:`take`."""
        self._next = None


async def _landed_quietly(client: LedgerClient, tx_hash: str) -> bool:
    """Whether ``tx_hash`` was mined; False when the node cannot tell now either."""
    try:
        return await client._landed(tx_hash)
    except _UNREADABLE:
        return False


class LedgerClient:
    """One account's view of one chain: deploy, call, transact, index."""

    def __init__(
        self,
        backend: ChainBackend,
        private_key: bytes | str,
        *,
        timeout_s: float = 30.0,
        retries: int = 3,
        poll_s: float = 0.005,
        gas_price_wei: int | None = None,
    ) -> None:
        self.backend = backend
        self.web3 = backend.web3
        self.account: LocalAccount = Account.from_key(private_key)
        self.address = self.account.address
        self.timeout_s = timeout_s
        self.retries = retries
        self.poll_s = poll_s
        self._gas_price_wei = gas_price_wei
        self._chain_id: int | None = None
        self.nonces = NonceManager(self.web3, self.address)

    # -- plumbing ----------------------------------------------------------------
    async def _with_retries(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` again after transient failures; NodeUnavailable after the last."""
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                # asyncio.timeout, not wait_for: in 3.11 wait_for loses a cancellation
                # (Ctrl-C) that arrives when the inner call has already finished
                async with asyncio.timeout(self.timeout_s):
                    return await make()
            except TRANSIENT_ERRORS as exc:
                if attempt == self.retries:
                    raise NodeUnavailable(
                        f"{self.backend.describe} did not answer {what} after "
                        f"{self.retries + 1} tries ({type(exc).__name__}: {exc}); "
                        f"is the node running?"
                    ) from exc
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = await self._with_retries("eth_chainId", self.backend.chain_id)
        return self._chain_id

    async def gas_price(self) -> int:
        """The backend's price (:meth:`ChainBackend.gas_price`), asked once."""
        if self._gas_price_wei is None:
            self._gas_price_wei = await self._with_retries("gas price", self.backend.gas_price)
        return self._gas_price_wei

    async def balance(self, address: str | None = None) -> int:
        who = cast(Any, address or self.address)
        return int(
            await self._with_retries("eth_getBalance", lambda: self.web3.eth.get_balance(who))
        )

    # -- transactions --------------------------------------------------------------
    def sign(self, tx: dict[str, Any]) -> bytes:
        """Sign a complete transaction dict locally; returns the raw bytes."""
        return bytes(self.account.sign_transaction(tx).raw_transaction)

    async def send(
        self,
        to: str | None,
        data: bytes = b"",
        *,
        value: int = 0,
        gas: int | None = None,
        decoders: dict[str, LogDecoder] | None = None,
    ) -> Receipt:
        """Sign and send one transaction, wait for it and return its receipt.

        Without ``gas`` the node estimates it, which also reports a revert before
        anything is sent. A mined transaction that reverted raises
        :class:`TransactionReverted` with the reason.
        """
        tx: dict[str, Any] = {
            "value": value,
            "data": data,
            "chainId": await self.chain_id(),
            "gasPrice": await self.gas_price(),
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        if gas is None:
            gas = await self._estimate({**tx, "from": self.address})
        tx["gas"] = gas
        plain: dict[str, Any] | None = None
        async with self.nonces.lock:
            for attempt in range(_NONCE_RETRIES + 1):
                tx["nonce"] = await self.nonces.take()
                raw = self.sign(tx)
                tx_hash = "0x" + keccak(raw).hex()
                answers_lost: list[BaseException] = []  # requests that may have reached it
                try:
                    plain = await self._send_and_wait(raw, answers_lost)
                    if plain is None:
                        await self._with_retries(
                            "eth_sendRawTransaction",
                            lambda: _noting_lost(
                                self.web3.eth.send_raw_transaction(raw),  # noqa: B023
                                answers_lost,  # noqa: B023
                            ),
                        )
                    break
                except BaseException as exc:
                    if _is_known_error(exc):  # the node has it already: wait for it below
                        break
                    self.nonces.forget()
                    reason = revert_reason(exc)
                    if reason is not None:
                        raise TransactionReverted(reason) from exc
                    if _is_nonce_error(exc):
                        # a retried request whose first answer was lost: our own
                        # transaction took the nonce, and must not be sent twice
                        if answers_lost and await self._landed(tx_hash):
                            break
                        # someone else (another client with this key) used it: re-read it
                        if attempt < _NONCE_RETRIES:
                            continue
                    # every answer was lost, but a request may have reached the node: its
                    # transaction hash says whether it landed, if the node answers that
                    # (never for a cancellation: that must go on up, as it came)
                    if (
                        isinstance(exc, Exception)
                        and answers_lost
                        and await _landed_quietly(self, tx_hash)
                    ):
                        break
                    raise
        if plain is not None:
            receipt, logs = receipt_of(tx_hash, plain)
        else:
            receipt, logs = await self._fetch_receipt(tx_hash)
        if receipt.status == 0:
            raise TransactionReverted(await self._reason_of(tx, receipt), receipt.tx_hash)
        if decoders:
            receipt.events.extend(decode_logs(logs, decoders))
        return receipt

    async def _landed(self, tx_hash: str) -> bool:
        """Whether the node has mined ``tx_hash``."""
        raw: Any = await self._with_retries(
            "eth_getTransactionReceipt", lambda: self.backend.receipt(tx_hash)
        )
        if raw is None:
            try:
                raw = await self._with_retries(
                    "eth_getTransactionReceipt",
                    lambda: self.web3.eth.get_transaction_receipt(tx_hash),  # type: ignore[arg-type]
                )
            except TransactionNotFound:
                return False
        return bool(raw)

    async def _send_and_wait(
        self, raw: bytes, answers_lost: list[BaseException]
    ) -> dict[str, Any] | None:
        """The receipt, where the backend sends and waits in one request; None where it
        cannot or the node refused (the ordinary send then raises the node's reason)."""
        try:
            return await self._with_retries(
                "eth_sendRawTransactionSync",
                lambda: _noting_lost(self.backend.send_and_wait(raw), answers_lost),
            )
        except NodeUnavailable:
            raise
        except NodeError:
            return None

    async def _estimate(self, tx: dict[str, Any]) -> int:
        try:
            return int(
                await self._with_retries(
                    "eth_estimateGas", lambda: self.web3.eth.estimate_gas(cast(Any, tx))
                )
            )  # type: ignore[arg-type]
        except Exception as exc:
            reason = revert_reason(exc)
            if reason is None:
                raise
            raise TransactionReverted(reason) from exc

    async def _reason_of(self, tx: dict[str, Any], receipt: Receipt) -> str:
        """Replay a reverted transaction as a call on its parent block to learn why."""
        call: dict[str, Any] = {k: tx[k] for k in ("to", "data", "value", "gas") if k in tx}
        call["from"] = self.address
        try:
            await self.web3.eth.call(call, receipt.block_number - 1)  # type: ignore[arg-type]
        except Exception as exc:
            reason = revert_reason(exc)
            return str(exc) if reason is None else reason
        return ""

    async def wait_for_receipt(self, tx_hash: str) -> Receipt:
        """Poll for the receipt of ``tx_hash`` until it is mined or ``timeout_s`` passes."""
        return (await self._fetch_receipt(tx_hash))[0]

    async def _fetch_receipt(self, tx_hash: str) -> tuple[Receipt, list[Any]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            raw: Any = await self._with_retries(
                "eth_getTransactionReceipt", lambda: self.backend.receipt(tx_hash)
            )
            if raw is None:  # this backend has no plain path: web3's, with its formatters
                try:
                    raw = await self._with_retries(
                        "eth_getTransactionReceipt",
                        lambda: self.web3.eth.get_transaction_receipt(tx_hash),  # type: ignore[arg-type]
                    )
                except TransactionNotFound:
                    raw = {}
            if raw:
                break
            if loop.time() > deadline:
                raise NodeError(
                    f"transaction {tx_hash} was not mined within {self.timeout_s} s "
                    f"on {self.backend.describe}"
                )
            await asyncio.sleep(self.poll_s)
        return receipt_of(tx_hash, raw)

    # -- contracts -------------------------------------------------------------------
    async def deploy(
        self, artifact: Artifact | str, *args: Any, value: int = 0, gas: int | None = None
    ) -> ContractBinding:
        """Deploy a contract from its artifact (by name or loaded) and bind to it."""
        art = load_artifact(artifact) if isinstance(artifact, str) else artifact
        factory = self.web3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        data = bytes.fromhex(factory.constructor(*args).data_in_transaction.removeprefix("0x"))
        receipt = await self.send(None, data, value=value, gas=gas)
        assert receipt.contract_address is not None
        return self.bind(art, receipt.contract_address)

    def bind(self, artifact: Artifact | str, address: str) -> ContractBinding:
        """A binding to an already deployed contract."""
        art = load_artifact(artifact) if isinstance(artifact, str) else artifact
        return ContractBinding(self, art, address)


class ContractBinding:
    """A deployed contract seen through one client: ``call``, ``transact``, events."""

    def __init__(self, client: LedgerClient, artifact: Artifact, address: str) -> None:
        self.client = client
        self.artifact = artifact
        self.address = to_checksum_address(address)
        self.contract = client.web3.eth.contract(address=self.address, abi=artifact.abi)
        self._encoders: dict[str, tuple[bytes, list[str]]] = {}
        # topic -> (abi, its data fields, its indexed fields), fields as (name, type)
        self._event_specs = {
            event_abi_to_log_topic(cast(Any, abi)): (
                abi,
                tuple((i["name"], i["type"]) for i in abi["inputs"] if not i["indexed"]),
                tuple((i["name"], i["type"]) for i in abi["inputs"] if i["indexed"]),
            )
            for abi in artifact.abi
            if abi["type"] == "event"
        }

    def _function(self, fn: str, args: tuple[Any, ...]) -> Any:
        try:
            return getattr(self.contract.functions, fn)(*args)
        except AttributeError:
            raise ConfigError(f"{self.artifact.name} has no function {fn!r}") from None

    def encode(self, fn: str, *args: Any) -> bytes:
        """The calldata of ``fn(*args)``, encoded with eth_abi (about 30x faster than
        web3's encoder on large settlements); tuples for structs, lists for arrays."""
        selector, types = self._spec(fn)
        return selector + abi_encode(types, list(args))

    def selector(self, fn: str) -> bytes:
        """The 4-byte selector of ``fn``."""
        return self._spec(fn)[0]

    def _spec(self, fn: str) -> tuple[bytes, list[str]]:
        spec = self._encoders.get(fn)
        if spec is None:
            abi = next(
                (
                    a
                    for a in self.artifact.abi
                    if a.get("type") == "function" and a.get("name") == fn
                ),
                None,
            )
            if abi is None:
                raise ConfigError(f"{self.artifact.name} has no function {fn!r}")
            types = list(get_abi_input_types(cast(Any, abi)))
            selector = function_signature_to_4byte_selector(f"{fn}({','.join(types)})")
            spec = self._encoders[fn] = (selector, types)
        return spec

    async def call(self, fn: str, *args: Any, block: int | str = "latest") -> Any:
        """Run a view function (or simulate any function) without a transaction."""
        func = self._function(fn, args)
        try:
            return await self.client._with_retries(
                f"eth_call {self.artifact.name}.{fn}",
                lambda: func.call({"from": self.client.address}, block_identifier=block),
            )
        except Exception as exc:
            reason = revert_reason(exc)
            if reason is None:
                raise
            raise TransactionReverted(reason) from exc

    async def transact(
        self, fn: str, *args: Any, value: int = 0, gas: int | None = None
    ) -> Receipt:
        """Send ``fn(*args)`` as a transaction and wait for it; events are decoded.

        An unknown function or arguments that do not fit its ABI raise while encoding,
        before anything is signed."""
        return await self.send_calldata(self.encode(fn, *args), value=value, gas=gas)

    async def send_calldata(
        self, data: bytes, *, value: int = 0, gas: int | None = None
    ) -> Receipt:
        """Send already-encoded calldata to this contract; events are decoded."""
        return await self.client.send(
            self.address, data, value=value, gas=gas, decoders={self.address: self}
        )

    def decode_log(self, log: Any) -> Event | None:
        """Decode one raw log of this contract; None when it is not one of its events.

        Events whose fields are all one-word values (uint256, bytes32, address, bool)
        are read word by word; others with eth_abi straight from the event's ABI.
        (web3's ``process_log`` took about half a millisecond a log, as long as
        executing the settlement that emitted it; eth_abi about 0.1 ms for a lease's
        eleven fields.) A test checks both against web3's decoding."""
        topics = log["topics"]
        if not topics:
            return None
        spec = self._event_specs.get(bytes(topics[0]))
        if spec is None:
            return None
        abi, plain, indexed = spec
        data = bytes(log["data"])
        try:
            values = words(plain, data) + words(indexed, b"".join(map(bytes, topics[1:])))
        except NotWords:
            values = [
                *abi_decode([t for _, t in plain], data),
                *(
                    abi_decode([t], bytes(topic))[0]
                    for (_, t), topic in zip(indexed, topics[1:], strict=True)
                ),
            ]
        args = {}
        for (name, kind), value in zip((*plain, *indexed), values, strict=True):
            if kind == "address":
                value = checksum_address(value)
            elif kind == "address[]":
                value = [checksum_address(a) for a in value]
            args[name] = value
        args = {i["name"]: args[i["name"]] for i in abi["inputs"]}  # the ABI's order
        return Event(
            name=abi["name"],
            address=self.address,
            args=args,
            block_number=int(log["blockNumber"]),
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            log_index=int(log["logIndex"]),
        )
