"""``specledger bench ledger``: raw speed of one chain backend through our client.

Figures (one JSON object):

- ``naive_tx_per_s``: one plain state-changing transaction per call, signed
  locally, sent, and waited for before the next one;
- ``call_per_s``: ``eth_call`` of a view function, one after another;
- ``sign_per_s``: transactions signed locally per second (no chain involved);
- ``signing_backend``: which ECC implementation eth-keys uses (coincurve or the
  pure-Python fallback).
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from typing import Any

from .backends import ChainBackend, dev_keys, open_backend
from .client import LedgerClient

__all__ = ["bench_ledger"]

_GAS = 100_000


async def _measure(backend: ChainBackend, n: int) -> dict[str, Any]:
    client = LedgerClient(backend, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    await probe.transact("increment", 1, gas=_GAS)  # warm caches before timing

    started = time.perf_counter()
    for _ in range(n):
        await probe.transact("increment", 1, gas=_GAS)
    naive = n / (time.perf_counter() - started)

    started = time.perf_counter()
    for _ in range(n):
        await probe.call("value")
    calls = n / (time.perf_counter() - started)

    tx = {
        "to": probe.address,
        "value": 0,
        "gas": _GAS,
        "gasPrice": 10**9,
        "chainId": await client.chain_id(),
        "data": probe.encode("increment", 1),
    }
    started = time.perf_counter()
    for nonce in range(n):
        client.sign({**tx, "nonce": nonce})
    signs = n / (time.perf_counter() - started)
    assert await probe.call("value") == n + 1, "the benchmark's transactions did not all land"
    return {
        "naive_tx_per_s": round(naive, 1),
        "call_per_s": round(calls, 1),
        "sign_per_s": round(signs, 1),
    }


def _signing_backend() -> str:
    from eth_keys.backends import get_backend

    return type(get_backend()).__name__


async def bench_ledger(
    backend: str = "embedded", n: int = 200, url: str | None = None
) -> dict[str, Any]:
    """Measure ``backend``; for rpc without ``url``, on a throwaway anvil of our own."""
    result: dict[str, Any] = {"backend": backend, "n": n, "signing_backend": _signing_backend()}
    with ExitStack() as stack:
        if backend == "embedded":
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
            chain = await open_backend("embedded", directory=directory, chain_name="bench")
            result["persisted"] = True
        else:
            if url is None:
                from .testnet import anvil

                url = stack.enter_context(anvil("bench")).url
            chain = await open_backend(backend, url=url)
            result["url"] = url
        try:
            result.update(await _measure(chain, n))
        finally:
            await chain.close()
    return result
