"""The gas and speed of a lease's whole life, on a mixed book.

The book: ``sellers`` sellers (half spectrum, each offering its own four channels
over two slots; half compute, eight units each) and ``buyers`` buyers, each with
one signed bid (one channel for one slot, or one compute unit), every bid
winning: about five leases per offer, spectrum and compute alike. Everyone joins
through ``join`` batches. Figures (deterministic: gas is the same on every run):

- ``gas_per_lease_mixed``: the settlement of the whole book, per lease;
- ``steps_gas_per_lease``: one ``lifecycle`` batch holding, for every lease, one
  Step with its seller's heartbeat and its buyer's completion, per lease (in a run
  these steps ride on the next epoch's settlement instead; on their own they pay a
  transaction's fixed cost, about 130k gas, here too);
- ``lifecycle_gas_per_lease``: the two together, what carrying one lease through
  its life (settled, heartbeat, completed and paid) costs in the epoch protocol;
- ``naive_lifecycle_gas_per_lease``: the same life with one transaction per step
  (``heartbeat`` by the seller, ``complete`` by the buyer) after the same settlement;
- ``join_gas_per_agent``: the ``join`` batches, per participant.

:func:`lifecycle_vs_naive` times both ways side by side (leases per second through
settlement, heartbeat and completion) on fresh books of one backend.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account

from ..bindings import MAX_JOINS, RegionMarket
from ..chain import ChainBackend, LedgerClient, dev_keys
from ..config import RegionConfig
from ..eip712 import quorum_sign
from ..records import (
    COMMITTEE,
    Bid,
    Joiner,
    Kind,
    LeaseIn,
    LeaseRecord,
    Offer,
    Role,
    Step,
    StepAction,
    chain_leases_hash,
    chain_steps_hash,
)
from .stats import MIN_REPEATS, Timing

__all__ = ["MixedBook", "lifecycle_gas", "lifecycle_vs_naive", "mixed_book"]

EPOCH_S = 3600
ROOT = b"\x01" * 32


@dataclass
class MixedBook:
    """A deployed market, its committee, and one epoch's leases waiting to settle."""

    backend: ChainBackend
    market: RegionMarket
    committee: list[bytes]
    keys: dict[str, bytes]  # participant address -> key
    leases: list[LeaseIn]
    join_gas: int
    agents: int

    def records(self, epoch: int = 1) -> list[LeaseRecord]:
        return [lease.record(epoch, self.market.region_id) for lease in self.leases]

    def client(self, address: str) -> RegionMarket:
        return self.market.as_client(LedgerClient(self.backend, self.keys[address]))

    def step(
        self, record: LeaseRecord, heartbeat_at: int = 0, action: StepAction = StepAction.NONE
    ) -> Step:
        """One lease's steps as the committee sends them, once it has checked the
        parties' signatures: they sign here, as they would (signing is timed)."""
        if heartbeat_at:
            self.market.sign_step(
                self.keys[record.seller], record.lease_id, StepAction.HEARTBEAT, heartbeat_at
            )
        party = record.buyer if action == StepAction.COMPLETE else COMMITTEE
        if action != StepAction.NONE and party != COMMITTEE:
            self.market.sign_step(self.keys[party], record.lease_id, action)
        return Step(record, heartbeat_at, int(action), party)

    async def settle(self, epoch: int = 1, steps: tuple[Step, ...] = ()) -> int:
        """Settle the book as epoch ``epoch``; returns the gas."""
        leases_hash = chain_leases_hash(self.records(epoch))
        digest = self.market.settlement_digest(epoch, ROOT, leases_hash, chain_steps_hash(steps))
        sigs = quorum_sign(digest, self.committee[:2])
        receipt = await self.market.settle(epoch, ROOT, leases_hash, self.leases, sigs, steps=steps)
        return receipt.gas_used

    async def apply(self, steps: list[Step]) -> int:
        """One attested ``lifecycle`` batch; returns the gas."""
        return (await self.market.apply_attested(steps, self.committee[:2])).gas_used

    async def now(self) -> int:
        return int((await self.backend.web3.eth.get_block("latest"))["timestamp"])


async def mixed_book(backend: ChainBackend, sellers: int = 20, buyers: int = 100) -> MixedBook:
    """Deploy a market on ``backend`` and build the book described in the module docstring."""
    keys = dev_keys(10)
    admin = LedgerClient(backend, keys[0])
    committee = keys[1:4]
    spectrum_sellers = sellers // 2
    config = RegionConfig(
        region_id=1, threshold=2, num_channels=4 * spectrum_sellers, epoch_length_s=EPOCH_S
    )
    market = await RegionMarket.deploy(
        admin, config, [Account.from_key(k).address for k in committee]
    )
    seller_keys = [(0x5E11 << 32 | i).to_bytes(32, "big") for i in range(sellers)]
    buyer_keys = [(0xB0B << 32 | i).to_bytes(32, "big") for i in range(buyers)]
    by_address = {Account.from_key(k).address: k for k in seller_keys + buyer_keys}
    joiners = []
    for address, key in by_address.items():
        seller = key in seller_keys
        role = Role.TERRESTRIAL if seller else Role.COORDINATOR
        sig = market.sign_registration(key, address, role)
        joiners.append(Joiner(address, role, 0 if seller else 10**17, 10**18 if seller else 0, sig))
    join_gas = 0
    for i in range(0, len(joiners), MAX_JOINS):
        join_gas += (await market.join(joiners[i : i + MAX_JOINS])).gas_used
    head = int((await backend.web3.eth.get_block("latest"))["timestamp"])
    start = (head // EPOCH_S + 2) * EPOCH_S
    offers: list[tuple[Offer, bytes]] = []
    for i, key in enumerate(seller_keys):
        who = Account.from_key(key).address
        if i < spectrum_sellers:
            offer = Offer(
                who, Kind.SPECTRUM, 4 * i, 4 * i + 4, start, start + 2 * EPOCH_S, 10**9, 1
            )
        else:
            offer = Offer(who, Kind.COMPUTE, 0, 8, start, start + 2 * EPOCH_S, 10**9, 1)
        offers.append((offer, key))
    spectrum = offers[:spectrum_sellers]
    compute = offers[spectrum_sellers:]
    leases = []
    for j, key in enumerate(buyer_keys):
        who = Account.from_key(key).address
        if j % 2 == 0:  # spectrum: each offer's channels, one slot each, in turn
            k = j // 2
            offer, seller_key = spectrum[k % len(spectrum)]
            channel = offer.lo + (k // len(spectrum)) % 4
            s0 = start + EPOCH_S * ((k // (4 * len(spectrum))) % 2)
            bid = Bid(who, Kind.SPECTRUM, offer.lo, offer.hi, 1, s0, s0 + EPOCH_S, 10**15, 0)
            first = channel
        else:
            offer, seller_key = compute[(j // 2) % len(compute)]
            bid = Bid(who, Kind.COMPUTE, 0, 0, 1, start, start + EPOCH_S, 10**15, 0)
            first = 0
        leases.append(
            LeaseIn(
                offer,
                market.sign_offer(seller_key, offer),
                bid,
                market.sign_bid(key, bid),
                first,
                10**12,
            )
        )
    leases.sort(key=lambda lease: (lease.offer.seller, lease.bid.buyer))  # offers together
    return MixedBook(backend, market, list(committee), by_address, leases, join_gas, len(joiners))


async def lifecycle_gas(open_chain: Callable[[], Awaitable[ChainBackend]]) -> dict[str, Any]:
    """The gas figures of the module docstring, each way on a fresh chain from
    ``open_chain``."""
    return _gas(await _life(open_chain, naive=False), await _life(open_chain, naive=True))


def _gas(batched: dict[str, int], naive: dict[str, int]) -> dict[str, Any]:
    n = batched["leases"]
    return {
        "gas_per_lease_mixed": round(batched["settle"] / n),
        "steps_gas_per_lease": round(batched["complete"] / n),
        "lifecycle_gas_per_lease": round((batched["settle"] + batched["complete"]) / n),
        "naive_lifecycle_gas_per_lease": round(
            (naive["settle"] + naive["heartbeat"] + naive["complete"]) / n
        ),
        "join_gas_per_agent": round(batched["join"] / batched["agents"]),
        "mixed_book": {"sellers": batched["sellers"], "buyers": n, "leases": n},
    }


async def _life(
    open_chain: Callable[[], Awaitable[ChainBackend]], naive: bool, timing: Timing | None = None
) -> dict[str, int]:
    """Settle a fresh mixed book, then heartbeat and complete every lease, batched or one
    transaction per step; the gas of each phase (and the time of the three, in ``timing``)."""
    backend = await open_chain()
    try:
        book = await mixed_book(backend)
        records = book.records()
        if naive:  # the parties send their own steps: they need gas money (not timed)
            admin = book.market.binding.client  # the deployer: one client keeps its nonces
            for address in book.keys:
                await admin.send(address, value=10**18, gas=21_000)
        wall, cpu = time.perf_counter(), time.process_time()
        settle = await book.settle()
        start = records[0].start
        await backend.mine(start + EPOCH_S // 4)
        heartbeat = complete = 0
        if naive:
            for record in records:
                receipt = await book.client(record.seller).lifecycle("heartbeat", record)
                heartbeat += receipt.gas_used
            await backend.mine(start + 3 * EPOCH_S // 4)
            for record in records:
                complete += (await book.client(record.buyer).lifecycle("complete", record)).gas_used
        else:  # as a run does: heartbeats at L/4, each lease's heartbeat and completion
            # in one step of one batch at 3L/4 (the next settlement carries it in a run)
            now = await book.now()
            await backend.mine(start + 3 * EPOCH_S // 4)
            complete = await book.apply([book.step(r, now, StepAction.COMPLETE) for r in records])
        if timing is not None:
            timing.add(time.perf_counter() - wall, time.process_time() - cpu)
        return {
            "leases": len(records),
            "settle": settle,
            "heartbeat": heartbeat,
            "complete": complete,
            "join": book.join_gas,
            "agents": book.agents,
            "sellers": book.agents - len(records),
        }
    finally:
        await backend.close()


async def lifecycle_vs_naive(
    open_chain: Callable[[], Awaitable[ChainBackend]], repeats: int = MIN_REPEATS
) -> dict[str, Any]:
    """Leases per second carried through settlement, heartbeat and completion: in the
    epoch protocol's batches, and with one transaction per step, interleaved on fresh
    books (signing the steps is timed: the parties do it on the way); with the gas
    figures of the module docstring (the same on every repeat)."""
    batched, naive = Timing(), Timing()
    for _ in range(max(repeats, MIN_REPEATS)):
        fast = await _life(open_chain, naive=False, timing=batched)
        slow = await _life(open_chain, naive=True, timing=naive)
    leases = fast["leases"]
    quick, plain = batched.rate(leases), naive.rate(leases)
    return {
        **_gas(fast, slow),
        "lifecycle_leases_per_s": quick,
        "naive_lifecycle_leases_per_s": plain,
        "lifecycle_vs_naive": round(quick["median"] / plain["median"], 2),
    }
