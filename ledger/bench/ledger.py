"""``specledger bench ledger``: raw speed of one chain backend through our client.

Every timed figure is a spread over at least MIN_REPEATS repeats
(:mod:`ledger.bench.stats`): ``{"median", "min", "max", "n"}``, and for a rate
``per_cpu_s`` beside it (the same count per CPU second of this process; on the
embedded backend the chain runs in this process too). Gas, counts and names are
plain values. Figures (one JSON object):

- ``naive_tx_per_s``: one plain state-changing transaction per call, signed
  locally, sent, and waited for before the next one; a repeat is ``n`` of them;
- ``call_per_s``: ``eth_call`` of a view function, one after another (``n`` a repeat);
- ``sign_per_s``: transactions signed locally per second (no chain involved);
- ``signing_backend``: which ECC implementation eth-keys uses (coincurve or the
  pure-Python fallback); ``keccak_backend``: which keccak eth-hash uses (safe-pysha3's
  or pycryptodome's);
- ``gas_per_lease``: gas of one ``RegionMarket.settle`` of 100 leases (100 distinct
  buyers, each with its own signed bid, 2-of-3 committee), divided by 100: a plain
  number, the median of the repeats (it moves by a few gas with the zero bytes of
  each repeat's signatures and timestamps); ``settle_100_s`` is that transaction's
  wall and CPU seconds (timed inside each repeat, a fresh market every time; on the
  embedded backend the chain's CPU is this process's);
- ``settle_leases_per_s``: leases per second through the whole epoch protocol for
  one region (sign, submit, clear, committee, settle; see ledger/bench/settle.py),
  one timed epoch a repeat, with ``settle_epoch_s`` its seconds and
  ``settle_time_per_lease`` saying where the time of one lease goes;
- ``floor_leases_per_s``: how fast this chain records leases at all.
  ``contracts/SettleFloor.vy`` does per lease only what recording any signed lease
  needs (one ecrecover, a fresh word marking the nonce used, an escrow debit, an event),
  100 a transaction (one transaction a repeat), with no signing, sequencer, mechanism or
  committee timed: a ceiling for ``settle_leases_per_s`` on the same backend;
- ``settle_vs_naive`` and ``floor_vs_naive``: the ratio of the medians
  (``settle_leases_per_s`` or ``floor_leases_per_s`` over ``naive_tx_per_s``), all
  measured side by side on the same backend in the same run;
- ``gas_per_lease_mixed``, ``steps_gas_per_lease``, ``lifecycle_gas_per_lease`` (target
  <= 75,000), ``naive_lifecycle_gas_per_lease``, ``join_gas_per_agent``: a lease's whole
  life on a mixed book of 20 sellers and 100 buyers (:mod:`ledger.bench.lifecycle`);
  ``lifecycle_leases_per_s`` and ``naive_lifecycle_leases_per_s``: such leases carried
  through settlement, heartbeat and completion per second, in the epoch protocol's
  batches and with one transaction per step, side by side on fresh books;
  ``lifecycle_vs_naive``: the ratio of their medians;
- ``cpu_count``: this machine's cores.

The many-region runtime is ``specledger bench regions`` (:mod:`ledger.bench.regions`).
"""

from __future__ import annotations

import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Any

from eth_utils import keccak

from ..chain import ChainBackend, LedgerClient, dev_keys, keccak_backend, open_backend
from .lifecycle import lifecycle_vs_naive
from .settle import measure_protocol
from .stats import MIN_REPEATS, Timing, spread, timed, timed_async

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
    started, cpu = time.perf_counter(), time.process_time()
    receipt = await market.settle(1, root, leases_hash, batch, sigs)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"gas_per_lease": round(receipt.gas_used / leases), "wall": elapsed, "cpu": cpu}


async def _settle_floor(
    backend: ChainBackend, leases: int = 100, rounds: int = MIN_REPEATS
) -> dict[str, Any]:
    """Leases per second that ``SettleFloor`` records, ``leases`` per transaction (one
    transaction a repeat): one ecrecover, two fresh storage words and an event a lease,
    and nothing else. Signing the items is not timed; sending, executing and waiting
    for the receipt is."""
    from eth_account import Account

    from ..eip712 import sign_digest

    client = LedgerClient(backend, dev_keys()[0])
    floor = await client.deploy("SettleFloor")
    keys = [(0xF100 << 32 | i).to_bytes(32, "big") for i in range(leases)]
    buyers = [Account.from_key(k).address for k in keys]
    await floor.transact("fund", buyers, 10**18, gas=60_000 + 30_000 * leases)
    timing = Timing()
    for r in range(max(rounds, MIN_REPEATS) + 1):  # the first round warms the caches up
        items = []
        for buyer, key in zip(buyers, keys, strict=True):
            digest = keccak(r.to_bytes(32, "big") + key)
            sig = sign_digest(key, digest)
            items.append((digest, sig.v, sig.r, sig.s, int(buyer, 16), r, 10**12))
        wall, cpu = time.perf_counter(), time.process_time()
        await floor.transact("settle", items, gas=100_000 + 60_000 * leases)
        if r:
            timing.add(time.perf_counter() - wall, time.process_time() - cpu)
    return timing.rate(leases)


async def _measure(backend: ChainBackend, n: int) -> dict[str, Any]:
    client = LedgerClient(backend, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    await probe.transact("increment", 1, gas=_GAS)  # warm caches before timing

    async def transactions() -> None:
        for _ in range(n):
            await probe.transact("increment", 1, gas=_GAS)

    async def calls() -> None:
        for _ in range(n):
            await probe.call("value")

    naive, _ = await timed_async(transactions)
    called, _ = await timed_async(calls)
    tx = {
        "to": probe.address,
        "value": 0,
        "gas": _GAS,
        "gasPrice": 10**9,
        "chainId": await client.chain_id(),
        "data": probe.encode("increment", 1),
    }
    nonces = itertools.count()

    def signatures() -> None:
        for _ in range(n):
            client.sign({**tx, "nonce": next(nonces)})

    signed, _ = timed(signatures)
    expected = 1 + n * len(naive.wall)
    assert await probe.call("value") == expected, "the benchmark's transactions did not all land"
    # a fresh market each repeat; only the settlement transaction itself is timed
    _, settlements = await timed_async(lambda: _settlement_gas(backend))
    return {
        "naive_tx_per_s": naive.rate(n),
        "call_per_s": called.rate(n),
        "sign_per_s": signed.rate(n),
        "gas_per_lease": round(statistics.median(s["gas_per_lease"] for s in settlements)),
        "settle_100_s": {
            "wall_s": spread([s["wall"] for s in settlements]),
            "cpu_s": spread([s["cpu"] for s in settlements]),
        },
    }


def _signing_backend() -> str:
    from eth_keys.backends import get_backend

    return type(get_backend()).__name__


def _ratio(numerator: dict[str, Any], denominator: dict[str, Any]) -> float:
    """The ratio of two spreads' medians (measured side by side, in the same run)."""
    return round(numerator["median"] / denominator["median"], 2)


async def bench_ledger(
    backend: str = "embedded",
    n: int = 200,
    url: str | None = None,
    settle_buyers: int = 100,
) -> dict[str, Any]:
    """Measure ``backend``; for rpc without ``url``, on a throwaway anvil of our own
    (embedded needs no anvil)."""
    result: dict[str, Any] = {
        "backend": backend,
        "n": n,
        "repeats": MIN_REPEATS,
        "signing_backend": _signing_backend(),
        "keccak_backend": keccak_backend(),
        "cpu_count": os.cpu_count(),
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
            result["floor_leases_per_s"] = await _settle_floor(chain)
        finally:
            await chain.close()
        result.update(await lifecycle_vs_naive(_fresh_chains(backend, url)))
    naive = result["naive_tx_per_s"]
    result["settle_vs_naive"] = _ratio(result["settle_leases_per_s"], naive)
    result["floor_vs_naive"] = _ratio(result["floor_leases_per_s"], naive)
    return result


def _fresh_chains(backend: str, url: str | None) -> Callable[[], Awaitable[ChainBackend]]:
    """A fresh chain for each mixed book: in memory (embedded), or the node at ``url``
    (each book deploys its own market there)."""
    count = itertools.count()

    async def fresh() -> ChainBackend:
        if backend == "embedded":
            from ..chain.backends.embedded import EmbeddedBackend

            return EmbeddedBackend(None, chain_id=32_100 + next(count))
        return await open_backend(backend, url=url)

    return fresh
