"""The ``rpc`` backend: any Ethereum JSON-RPC endpoint, through AsyncWeb3.

Dev-chain controls use anvil's methods (``evm_setNextBlockTimestamp``,
``evm_mine``, ``evm_snapshot``, ``evm_revert``); a node without them raises a
:class:`~ledger.errors.NodeError` that names the method.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from web3 import AsyncHTTPProvider, AsyncWeb3

from ...errors import ConfigError, NodeError, NodeUnavailable
from .base import ChainBackend, plain_receipt

__all__ = ["TRANSIENT_ERRORS", "RpcBackend"]

#: errors after which a request may succeed when tried again
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    asyncio.TimeoutError,
    OSError,
)
# aiohttp is what web3's async HTTP provider uses underneath (a web3 dependency)
TRANSIENT_ERRORS = (*TRANSIENT_ERRORS, aiohttp.ClientConnectionError)


class _KeepAliveProvider(AsyncHTTPProvider):
    """web3's async HTTP provider, keeping its TCP connections open between requests.

    web3 caches one aiohttp session per event loop and endpoint, but builds it with
    ``force_close=True``: every request opened a new connection (measured on anvil:
    0.59 ms a request, against 0.13 ms over a kept-alive one). Before the first request
    in each event loop this caches a session of ours with a pooling connector, and web3
    then uses it (and closes it on ``disconnect``). A connection the node has dropped
    fails with aiohttp's connection errors, which the client retries as transient."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keepalive_loops: set[int] = set()

    async def _keep_alive(self) -> None:
        loop = id(asyncio.get_running_loop())
        if loop not in self._keepalive_loops:
            self._keepalive_loops.add(loop)
            session = aiohttp.ClientSession(
                raise_for_status=True,
                connector=aiohttp.TCPConnector(enable_cleanup_closed=True),
            )
            if await self.cache_async_session(session) is not session:
                await session.close()  # web3 had one for this loop already: keep that

    async def make_request(self, method: Any, params: Any) -> Any:
        await self._keep_alive()
        return await super().make_request(method, params)

    async def make_batch_request(self, requests: Any) -> Any:
        await self._keep_alive()
        return await super().make_batch_request(requests)


class RpcBackend(ChainBackend):
    """A chain reached at ``url`` over JSON-RPC (a local anvil, or any node)."""

    name = "rpc"
    persistent = False

    def __init__(self, url: str, *, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"RPC URL must start with http:// or https://, got {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        # cache_allowed_requests: web3 8 otherwise asks eth_chainId before every call
        provider = _KeepAliveProvider(
            url, cache_allowed_requests=True, request_kwargs={"timeout": timeout_s}
        )
        self._web3 = AsyncWeb3(provider)
        self._sync_send = True  # until the node says it has no eth_sendRawTransactionSync

    @classmethod
    async def connect(cls, url: str, *, timeout_s: float = 10.0) -> RpcBackend:
        """Open the backend and check that a node answers at ``url``."""
        backend = cls(url, timeout_s=timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                await backend.web3.eth.chain_id
        except Exception as exc:  # any failure here means: nothing usable answers
            await backend.close()
            raise NodeUnavailable(
                f"no JSON-RPC node answers at {url} ({type(exc).__name__}): start one "
                f"(`specledger testnet up`) or check the URL"
            ) from exc
        return backend

    @property
    def web3(self) -> AsyncWeb3[Any]:
        return self._web3

    @property
    def describe(self) -> str:
        return f"JSON-RPC node at {self.url}"

    async def close(self) -> None:
        await self._web3.provider.disconnect()

    async def _request(self, method: str, params: list[Any]) -> Any:
        try:
            response = await self._web3.provider.make_request(method, params)  # type: ignore[arg-type]
        except TRANSIENT_ERRORS as exc:
            raise NodeUnavailable(f"{self.describe} did not answer {method}: {exc}") from exc
        if "error" in response:
            raise NodeError(f"{self.describe} refused {method}: {response['error']}")
        return response.get("result")

    async def _raw(self, method: str, params: list[Any]) -> Any:
        """One request, transient errors left to the caller's retries."""
        response = await self._web3.provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise NodeError(f"{self.describe} refused {method}: {response['error']}")
        return response.get("result")

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        raw = await self._raw("eth_getTransactionReceipt", [tx_hash])
        return plain_receipt(raw) if raw else {}

    async def send_and_wait(self, raw: bytes) -> dict[str, Any] | None:
        """``eth_sendRawTransactionSync`` (EIP-7966; anvil has it): the receipt comes back
        with the send, instead of a send and then polling for the receipt. A node without
        the method is asked once, then never again."""
        if not self._sync_send:
            return None
        response = await self._web3.provider.make_request(
            "eth_sendRawTransactionSync",  # type: ignore[arg-type]
            ["0x" + raw.hex()],
        )
        error = response.get("error")
        if error is None:
            return plain_receipt(response["result"])
        if error.get("code") == -32601 or "not supported" in str(error.get("message")):
            self._sync_send = False  # the method is unknown here: nothing was sent
            return None
        raise NodeError(f"{self.describe} refused eth_sendRawTransactionSync: {error}")

    async def block_receipts(self, number: int) -> list[dict[str, Any]] | None:
        raw = await self._raw("eth_getBlockReceipts", [hex(number)])
        return None if raw is None else [plain_receipt(r) for r in raw]

    async def set_next_block_timestamp(self, timestamp: int) -> None:
        await self._request("evm_setNextBlockTimestamp", [timestamp])

    async def mine(self, timestamp: int | None = None) -> int:
        if timestamp is not None:
            await self.set_next_block_timestamp(timestamp)
        await self._request("evm_mine", [])
        return int(await self.web3.eth.block_number)

    async def snapshot(self) -> Any:
        return await self._request("evm_snapshot", [])

    async def revert(self, snapshot_id: Any) -> None:
        ok = await self._request("evm_revert", [snapshot_id])
        if not ok:
            raise ConfigError(f"no snapshot {snapshot_id!r} on {self.describe}")
