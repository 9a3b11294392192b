"""The epoch protocol's throughput for one region: ``settle_leases_per_s``.

One measured epoch of a region is the whole protocol: every buyer signs its
bid (EIP-712), the sequencer checks and admits it, the book is frozen and
hashed, each of the 3 validators re-runs the mechanism and signs, and one
settlement transaction records all leases. Setting up the participants
(funding, registering, depositing) is not timed, nor is one warm-up epoch.

Each timed epoch is one repeat: ``settle_leases_per_s`` is the spread (median,
min, max; and per CPU second of this process) of the epochs' leases per second,
and ``settle_time_per_lease`` the spread of each phase's milliseconds per lease.
The many-region runtime is measured by :mod:`ledger.bench.regions`.
"""

from __future__ import annotations

import time
from typing import Any

from ..bindings import RegionMarket
from ..chain import ChainBackend, LedgerClient, dev_keys
from ..config import RegionConfig
from ..errors import LedgerError
from ..records import Role
from ..region import RegionSequencer, Trader, Validator, settle_epoch
from ..tiered import derive_key
from .stats import MIN_REPEATS, spread, timed_async

__all__ = ["CHANNELS", "measure_protocol"]

CHANNELS = 128
PHASES = ("sign_s", "admit_s", "attest_and_settle_s")


async def _setup(
    backend: ChainBackend, buyers: int, region: int = 1
) -> tuple[RegionSequencer, list[Validator], list[Trader], Trader, int]:
    config = RegionConfig(region, mechanism="second_price", num_channels=CHANNELS)
    validators = [Validator(derive_key(region, f"bench-validator-{i}")) for i in range(3)]
    admin = LedgerClient(backend, dev_keys()[0])
    market = await RegionMarket.deploy(admin, config, [v.address for v in validators])
    seller = Trader(derive_key(region, "bench-seller"), market, admin)
    await seller.join(Role.TERRESTRIAL, bond_wei=10**18)
    traders = []
    for i in range(buyers):
        t = Trader(derive_key(region, f"bench-buyer-{i}"), market, admin)
        await t.join(Role.COORDINATOR, deposit_wei=10**17)
        traders.append(t)
    sequencer = RegionSequencer(market, config)
    await sequencer.sync()  # index the set-up blocks now, not inside a timed epoch
    return sequencer, validators, traders, seller, config.threshold


async def _epoch(
    sequencer: RegionSequencer,
    validators: list[Validator],
    buyers: list[Trader],
    seller: Trader,
    threshold: int,
    epoch: int,
) -> tuple[int, dict[str, float]]:
    """One epoch of the protocol; its leases and the seconds of each phase."""
    await sequencer.open(epoch)
    start, end = sequencer.window(epoch)
    t0 = time.perf_counter()
    offer = seller.offer(0, 0, CHANNELS, start, end, 10**9)
    bids = [b.bid(0, 0, CHANNELS, 1, start, end, 10**14) for b in buyers]
    t1 = time.perf_counter()
    await sequencer.submit_offer(offer)
    for bid in bids:
        await sequencer.submit_bid(bid)
    t2 = time.perf_counter()
    outcome = await settle_epoch(sequencer.market, sequencer.close(), validators, threshold)
    t3 = time.perf_counter()
    if not outcome.settled:
        raise LedgerError(f"bench: epoch {epoch} did not settle: {outcome.reason}")
    sequencer.apply(outcome.leases)
    return len(outcome.leases), dict(zip(PHASES, (t1 - t0, t2 - t1, t3 - t2), strict=True))


async def measure_protocol(
    backend: ChainBackend, buyers: int = 100, epochs: int = MIN_REPEATS
) -> dict[str, Any]:
    """Leases per second through the whole epoch protocol for one region, each of
    ``epochs`` (at least MIN_REPEATS) timed epochs a repeat."""
    sequencer, validators, traders, seller, threshold = await _setup(backend, buyers)
    head = int((await backend.web3.eth.get_block("latest"))["timestamp"])
    first = head // 60 + 10
    await _epoch(sequencer, validators, traders[:5], seller, threshold, first)  # warm-up
    # the warm-up used one nonce per buyer for 5 buyers; later bids carry fresh nonces
    upcoming = iter(range(first + 1, first + 1 + max(epochs, MIN_REPEATS)))

    async def one() -> tuple[int, dict[str, float]]:
        return await _epoch(sequencer, validators, traders, seller, threshold, next(upcoming))

    timing, results = await timed_async(one, epochs)
    for leases, _ in results:
        if leases != buyers:  # every bid fits: a shortfall means the figure counts less
            raise LedgerError(f"bench: a timed epoch settled {leases} of {buyers} bids")
    per_lease_ms = {
        k[:-2] + "_ms": spread([1000 * phases[k] / leases for leases, phases in results])
        for k in PHASES
    }
    return {
        "settle_leases_per_s": timing.rate(buyers),
        "settle_epoch_s": timing.seconds(),
        "settle_epochs": len(results),
        "settle_leases_per_epoch": buyers,
        "settle_time_per_lease": per_lease_ms,
    }
