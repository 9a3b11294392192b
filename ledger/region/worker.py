"""A region's Python work in its own OS process (rpc backend).

Each region's committee re-runs the mechanism, signs, and its settlement
transaction is encoded, signed, sent and waited for: on one core that is most
of an epoch's Python work (ledger/bench/settle.py says where the time goes).
:class:`RegionWorker` does it in a dedicated process with its own event loop,
its own JSON-RPC connection to the region's node, and its own submitter key, so
regions settle on separate cores and a region whose node hangs only holds its
own process. The sequencer (admission of orders) stays in the caller's loop:
it is cheap per order and the agents talk to it directly.

Only what crosses the process boundary is pickled: the frozen order book in,
the :class:`~ledger.region.EpochOutcome` out. A failure in the worker comes back
as an outcome that did not settle, with the reason.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from ..bindings import RegionMarket
from ..chain import LedgerClient, keccak_backend
from ..errors import ConfigError
from ..mechanisms import register_path, registered_paths
from .committee import EpochOutcome
from .sequencer import FrozenBook

__all__ = ["RegionWorker", "WorkerConfig"]

SUBMITTER_GAS_WEI = 10**18  # a region worker's gas money


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to settle one region's epochs on its own."""

    url: str
    region_id: int
    chain_id: int
    market_address: str
    submitter_key: bytes
    validator_keys: tuple[bytes, ...]
    threshold: int
    timeout_s: float = 30.0
    retries: int = 3
    keccak: str = ""  # the caller's eth-hash backend, chosen again in the worker
    mechanisms: tuple[str, ...] = ()  # "module:Class" of mechanisms registered beyond ours


class _Worker:
    """The state of the one region a worker process serves (lives in that process only)."""

    def __init__(self, config: WorkerConfig) -> None:
        from ..chain.backends.rpc import RpcBackend
        from .committee import Validator

        self.config = config
        self.loop = asyncio.new_event_loop()
        backend = RpcBackend(config.url, timeout_s=config.timeout_s)
        client = LedgerClient(
            backend, config.submitter_key, timeout_s=config.timeout_s, retries=config.retries
        )
        self.market = RegionMarket(
            client.bind("RegionMarket", config.market_address), config.region_id, config.chain_id
        )
        self.validators = [Validator(k) for k in config.validator_keys]

    def settle(self, frozen: FrozenBook) -> EpochOutcome:
        from .committee import settle_epoch

        try:
            for path in self.config.mechanisms:  # a spawned process knows only ours
                register_path(path)
            return self.loop.run_until_complete(
                settle_epoch(self.market, frozen, self.validators, self.config.threshold)
            )
        except Exception as exc:  # comes back as an outcome: exceptions need not pickle
            return EpochOutcome(
                frozen.region, frozen.epoch, settled=False, reason=f"{type(exc).__name__}: {exc}"
            )


_worker: _Worker | None = None  # set by _start in the worker process, never in the caller


def _start(config: WorkerConfig) -> None:
    global _worker
    from ..chain import use_fast_keccak

    if config.keccak == "PySha3Backend":  # a spawned process starts afresh: as the caller
        use_fast_keccak()
    # Ctrl-C goes to the whole process group: the caller decides, the worker carries on
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = _Worker(config)


def _settle(frozen: FrozenBook) -> EpochOutcome:
    assert _worker is not None, "worker not started"
    return _worker.settle(frozen)


def _pid() -> int:
    return os.getpid()


class RegionWorker:
    """One process that settles one region's epochs."""

    @classmethod
    async def start(
        cls,
        client: LedgerClient,
        market: RegionMarket,
        validator_keys: Sequence[bytes],
        threshold: int,
        submitter_key: bytes,
    ) -> RegionWorker:
        """A worker for ``market``'s region with a submitter key of its own, funded by
        ``client`` (the deployer), so no nonce is shared with this process."""
        url = getattr(client.backend, "url", None)
        if url is None:
            raise ConfigError("region processes need the rpc backend (a node URL per region)")
        address = Account.from_key(submitter_key).address
        if await client.balance(address) < SUBMITTER_GAS_WEI // 2:
            await client.send(address, value=SUBMITTER_GAS_WEI, gas=21_000)
        return cls(
            WorkerConfig(
                url=url,
                region_id=market.region_id,
                chain_id=market.chain_id,
                market_address=market.address,
                submitter_key=submitter_key,
                validator_keys=tuple(validator_keys),
                threshold=threshold,
                # a request's limit is the node's (the chains' factory chose it)
                timeout_s=getattr(client.backend, "timeout_s", client.timeout_s),
                retries=client.retries,
                keccak=keccak_backend(),
                mechanisms=registered_paths(),
            )
        )

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=mp.get_context("spawn"),  # no fork of a process with running loops
            initializer=_start,
            initargs=(config,),
        )

    async def settle(self, frozen: FrozenBook) -> EpochOutcome:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _settle, frozen)

    async def pid(self) -> int:
        """The worker's process id (starts the process if it is not running yet)."""
        return int(await asyncio.get_running_loop().run_in_executor(self._pool, _pid))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def kill(self) -> None:
        """Stop the process at once, mid-settlement if need be: a settlement whose answer
        is overdue must not land after the caller has looked at the chain. (The pool has
        no public handle on its process; ``_processes`` is where CPython keeps it.)"""
        for process in list(getattr(self._pool, "_processes", {}).values()):
            process.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __getstate__(self) -> Any:  # pragma: no cover - a worker handle never travels
        raise TypeError("a RegionWorker cannot be pickled")
