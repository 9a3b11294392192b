"""``specledger bench ledger``: raw speed of one chain backend through our client.

Figures (one JSON object):

- ``naive_tx_per_s``: one plain state-changing transaction per call, signed
  locally, sent, and waited for before the next one;
- ``call_per_s``: ``eth_call`` of a view function, one after another;
- ``sign_per_s``: transactions signed locally per second (no chain involved);
- ``signing_backend``: which ECC implementation eth-keys uses (coincurve or the
  pure-Python fallback); ``keccak_backend``: which keccak eth-hash uses (safe-pysha3's
  or pycryptodome's);
- ``gas_per_lease``: gas of one ``RegionMarket.settle`` of 100 leases (100 distinct
  buyers, each with its own signed bid, 2-of-3 committee), divided by 100;
  ``settle_100_s`` is that transaction's wall time;
- ``settle_leases_per_s``: leases per second through the whole epoch protocol for
  one region (sign, submit, clear, committee, settle; see ledger/bench/settle.py),
  with ``settle_time_per_lease`` saying where the time of one lease goes;
- ``settle_vs_naive``: ``settle_leases_per_s / naive_tx_per_s``, same backend, same run;
- ``floor_leases_per_s`` and ``floor_vs_naive``: how fast this chain records leases at
  all. ``contracts/SettleFloor.vy`` does per lease only what recording any signed lease
  needs (one ecrecover, a fresh word marking the nonce used, an escrow debit, an event),
  100 a transaction, with no signing, sequencer, mechanism or committee timed: a ceiling
  for ``settle_leases_per_s`` on the same backend;
- ``cpu_count``: this machine's cores, which the regions share;
- ``regions_scaling``: aggregate settled leases per second with 1, 2 and 4 regions of
  the live runtime on the rpc backend: a TieredLedger whose regions settle in processes
  of their own (see ledger/bench/settle.py).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from contextlib import ExitStack
from typing import Any

from eth_utils import keccak

from ..chain import ChainBackend, LedgerClient, dev_keys, keccak_backend, open_backend
from .settle import measure_protocol, regions_scaling

__all__ = ["bench_ledger"]

_GAS = 100_000


async def _settlement_gas(backend: ChainBackend, leases: int = 100) -> dict[str, Any]:
    """Deploy a market, fund ``leases`` buyers and settle one lease each in one transaction."""
    from eth_account import Account

    from ..bindings import RegionMarket
    from ..config import RegionConfig
    from ..eip712 import quorum_sign
    from ..records import Bid, LeaseIn, Offer, Role, chain_leases_hash

    keys = dev_keys(10)
    admin = LedgerClient(backend, keys[0])
    committee = keys[1:4]
    config = RegionConfig(region_id=1, threshold=2, num_channels=16, epoch_length_s=60)
    market = await RegionMarket.deploy(
        admin, config, [Account.from_key(k).address for k in committee]
    )
    seller_key = keys[4]
    seller = market.as_client(LedgerClient(backend, seller_key))
    await seller.register(Role.TERRESTRIAL)
    await seller.post_bond(10**18)
    buyer_keys = [(0xB0B << 32 | i).to_bytes(32, "big") for i in range(leases)]
    for key in buyer_keys:
        await admin.send(Account.from_key(key).address, value=10**18, gas=21_000)
        buyer = market.as_client(LedgerClient(backend, key))
        await buyer.register(Role.COORDINATOR)
        await buyer.deposit(10**17)
    head = int((await backend.web3.eth.get_block("latest"))["timestamp"])
    start = (head // 60 + 2) * 60
    slots = -(-leases // 16)
    offer = Offer(seller.binding.client.address, 0, 0, 16, start, start + 60 * slots, 10**9, 1)
    offer_sig = market.sign_offer(seller_key, offer)
    batch = []
    for i, key in enumerate(buyer_keys):
        s0 = start + 60 * (i // 16)
        bid = Bid(Account.from_key(key).address, 0, 0, 16, 1, s0, s0 + 60, 10**15, 0)
        batch.append(LeaseIn(offer, offer_sig, bid, market.sign_bid(key, bid), i % 16, 10**12))
    root = b"\x01" * 32
    records = [lease.record(1, 1) for lease in batch]
    leases_hash = chain_leases_hash(records)
    sigs = quorum_sign(market.settlement_digest(1, root, leases_hash), committee[:2])
    started = time.perf_counter()
    receipt = await market.settle(1, root, leases_hash, batch, sigs)
    elapsed = time.perf_counter() - started
    return {"gas_per_lease": round(receipt.gas_used / leases), "settle_100_s": round(elapsed, 3)}


async def _settle_floor(backend: ChainBackend, leases: int = 100, rounds: int = 3) -> float:
    """Leases per second that ``SettleFloor`` records, ``leases`` per transaction: one
    ecrecover, two fresh storage words and an event a lease, and nothing else. Signing
    the items is not timed; sending, executing and waiting for the receipt is."""
    from eth_account import Account

    from ..eip712 import sign_digest

    client = LedgerClient(backend, dev_keys()[0])
    floor = await client.deploy("SettleFloor")
    keys = [(0xF100 << 32 | i).to_bytes(32, "big") for i in range(leases)]
    buyers = [Account.from_key(k).address for k in keys]
    await floor.transact("fund", buyers, 10**18, gas=60_000 + 30_000 * leases)
    elapsed = 0.0
    for r in range(rounds + 1):  # the first round warms the caches up
        items = []
        for buyer, key in zip(buyers, keys, strict=True):
            digest = keccak(r.to_bytes(32, "big") + key)
            sig = sign_digest(key, digest)
            items.append((digest, sig.v, sig.r, sig.s, int(buyer, 16), r, 10**12))
        started = time.perf_counter()
        await floor.transact("settle", items, gas=100_000 + 60_000 * leases)
        if r:
            elapsed += time.perf_counter() - started
    return rounds * leases / elapsed


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
        **await _settlement_gas(backend),
    }


def _signing_backend() -> str:
    from eth_keys.backends import get_backend

    return type(get_backend()).__name__


async def bench_ledger(
    backend: str = "embedded",
    n: int = 200,
    url: str | None = None,
    settle_buyers: int = 100,
    scaling: bool = True,
) -> dict[str, Any]:
    """Measure ``backend``; for rpc without ``url``, on a throwaway anvil of our own."""
    result: dict[str, Any] = {
        "backend": backend,
        "n": n,
        "signing_backend": _signing_backend(),
        "keccak_backend": keccak_backend(),
        "cpu_count": os.cpu_count(),  # regions_scaling flattens past the cores
    }
    with ExitStack() as stack:
        if backend == "embedded":
            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
            chain = await open_backend("embedded", directory=directory, chain_name="bench")
            result["persisted"] = True
        else:
            if url is None:
                from ..chain.testnet import anvil

                url = stack.enter_context(anvil("bench")).url
            chain = await open_backend(backend, url=url)
            result["url"] = url
        try:
            result.update(await _measure(chain, n))
            result.update(await measure_protocol(chain, settle_buyers))
            result["floor_leases_per_s"] = round(await _settle_floor(chain), 1)
        finally:
            await chain.close()
    result["settle_vs_naive"] = round(result["settle_leases_per_s"] / result["naive_tx_per_s"], 2)
    result["floor_vs_naive"] = round(result["floor_leases_per_s"] / result["naive_tx_per_s"], 2)
    if scaling:
        loop = asyncio.get_running_loop()
        result["regions_scaling"] = await loop.run_in_executor(
            None, lambda: regions_scaling(buyers=settle_buyers)
        )
    return result
