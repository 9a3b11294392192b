"""The training coordinator: the job's buyer, with the Lyapunov scheduler as its strategy.

Its part of an epoch, in order:

1. :meth:`Coordinator.bid` — the scheduler picks devices and bandwidth among the
   devices on offer; each region's mechanism says how that demand is written as
   bids (:meth:`ledger.mechanisms.Mechanism.orders_for`); the coordinator signs
   them within its escrow and hands them to the region's sequencer;
2. :meth:`Coordinator.train` — once leases settled, the round trains for real
   with the devices that won and kept working, on the spectrum actually leased;
3. :meth:`Coordinator.close_leases` — it completes its leases (sellers are paid)
   and reports the devices that dropped out (their bonds are slashed);
4. :meth:`Coordinator.confirm` — the round's update and metrics hashes go to the
   root chain, against the job's escrowed budget.

It joins every region with a deposit and posts the job on the root
(:meth:`Coordinator.join`). A collaborative training pool is bought the same way
(:meth:`Coordinator.bid_pool`). A run with several training jobs has a coordinator
for each (:class:`Jobs`); they compete for the same devices and bands.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ledger.bindings import RootLedger
from ledger.chain import LedgerClient
from ledger.mechanisms import Demand, OrderGroup
from ledger.records import Joiner, Kind, LeaseRecord, Role, StepAction
from ledger.region import OrderRefused, RegionSequencer, StepRefused, Trader
from ledger.tiered import TieredLedger
from training.job import ScheduledJob
from training.parallel.lease import PoolLease

from .errors import AgentError
from .roles import DEVICE, SERVER, UNIT_WEI
from .strategies import BiddingStrategy

__all__ = ["ETH", "Coordinator", "Jobs", "RoundDone"]

ETH = 10**18
SPECTRUM_VALUE_WEI = 4 * UNIT_WEI  # what one uplink channel is worth to the job, per epoch
COMPUTE_VALUE_WEI = 6 * UNIT_WEI  # and one unit of device or edge-server compute
MAX_CHANNELS_PER_DEVICE = 4


@dataclass
class RoundDone:
    """A trained round, before its confirmation on the root."""

    row: dict[str, Any]  # the metrics line the root's metrics hash commits to
    update_hash: bytes
    loss: float
    accuracy: float | None  # None for regression tasks


@dataclass
class Coordinator:
    """The buyer of one split-federated-LoRA job across every region."""

    key: bytes
    job: ScheduledJob | None  # None: a coordinator that buys only a training pool
    strategy: BiddingStrategy
    rounds: int = 0
    traders: dict[int, Trader] = field(default_factory=dict)
    round: int = 0
    job_id: int = -1
    budget_left_wei: int = 0
    root: RootLedger | None = None

    @property
    def training(self) -> bool:
        """Whether the job still has rounds to run."""
        return self.round < self.rounds

    # -- joining -------------------------------------------------------------------------
    def joiners(self, ledger: TieredLedger, deposit_wei: int) -> dict[int, Joiner]:
        """Its signed registration and deposit for every region's ``join`` batch."""
        out = {}
        for r, rt in ledger.regions.items():
            trader = Trader(self.key, rt.market, rt.client)
            out[r] = trader.joiner(Role.COORDINATOR, deposit_wei=deposit_wei)
            self.traders[r] = trader
        return out

    async def post_job(self, ledger: TieredLedger, spec_hash: bytes) -> None:
        """Post the job on the root with its budget escrowed."""
        root_client = ledger.root.binding.client
        mine = LedgerClient(root_client.backend, self.key)
        self.root = ledger.root.as_client(mine)
        await root_client.send(mine.address, value=2 * ETH, gas=21_000)
        receipt = await self.root.binding.transact(
            "post_job", spec_hash, self.rounds, mine.address, value=ETH, gas=400_000
        )
        self.job_id = int(receipt.event("JobPosted").args["job_id"])
        self.budget_left_wei = ETH

    # -- 1. bidding ------------------------------------------------------------------------
    async def bid(
        self,
        ledger: TieredLedger,
        slot: int,
        on_offer: Mapping[int, int],
        offered_hz: float,
        refused: Callable[[str], None],
    ) -> int:
        """Decide with the scheduler among the devices ``on_offer`` (index -> region) and
        bid in each region for slot ``slot``; returns how many orders were admitted."""
        if not self.training or not on_offer:
            return 0
        assert self.job is not None, "a coordinator with rounds to run has a job"
        schedule = self.job.plan(sorted(on_offer), offered_hz or 1.0)
        admitted = 0
        for r, rt in ledger.regions.items():
            chosen = [k for k in schedule.devices if on_offer[k] == r]
            if not chosen:
                continue
            share = np.mean([schedule.bandwidth_hz[k] for k in chosen])
            channels = int(np.clip(share / rt.config.channel_width_hz, 1, MAX_CHANNELS_PER_DEVICE))
            device = Demand(
                DEVICE,
                self.strategy.bid_wei(COMPUTE_VALUE_WEI),
                channels,
                self.strategy.bid_wei(SPECTRUM_VALUE_WEI),
            )
            server = Demand(SERVER, self.strategy.bid_wei(COMPUTE_VALUE_WEI))
            admitted += await self._demand(
                rt.sequencer, [device] * len(chosen) + [server], slot, refused
            )
        return admitted

    async def _demand(
        self,
        sequencer: RegionSequencer,
        demands: Sequence[Demand],
        slot: int,
        refused: Callable[[str], None],
    ) -> int:
        """Write ``demands`` as the region's mechanism (as the chain names it now) takes
        bids, sign them and hand them to its sequencer; returns the orders admitted."""
        mechanism = sequencer.mechanism
        if mechanism is None:  # the chain names a mechanism we do not know: nothing fits
            refused(f"coordinator: region {sequencer.config.region_id} runs an unknown mechanism")
            return 0
        channels = sequencer.config.num_channels
        groups = [g for d in demands for g in mechanism.orders_for(d, channels)]
        trader = self.traders[sequencer.config.region_id]
        return await self._submit(sequencer, trader, groups, sequencer.window(slot), refused)

    @staticmethod
    async def _submit(
        sequencer: RegionSequencer,
        trader: Trader,
        groups: Sequence[OrderGroup],
        window: tuple[int, int],
        refused: Callable[[str], None],
    ) -> int:
        admitted = 0
        for group in groups:
            signed = [
                trader.bid(o.kind, o.lo, o.hi, o.units, *window, o.max_price_wei)
                for o in group.orders
            ]
            submissions: list[Awaitable[object]]
            if group.together:  # one bundle: a spectrum bid and a compute bid
                submissions = [sequencer.submit_bundle(*sorted(signed, key=lambda s: s.bid.kind))]
            else:
                submissions = [sequencer.submit_bid(s) for s in signed]
            for submission in submissions:
                try:
                    await submission
                except OrderRefused as exc:
                    refused(f"coordinator: {exc.reason}")
                else:
                    admitted += 1
        return admitted

    async def bid_pool(
        self,
        sequencer: RegionSequencer,
        lease: PoolLease,
        slot: int,
        *,
        device_price_wei: int,
        channel_price_wei: int,
        refused: Callable[[str], None],
    ) -> int:
        """Bid for a collaborative training pool (``lease``, from the planner) in one epoch
        of the sequencer's region: per device one unit of device compute and the channels
        that carry the plan's link rate, written as the region's mechanism takes them.
        Returns the orders admitted."""
        config = sequencer.config
        if lease.channels_per_device > config.num_channels:
            raise AgentError(
                f"the plan needs {lease.channels_per_device} channels per device "
                f"({lease.link_bits_per_s / 1e6:,.0f} Mbit/s); region {config.region_id} has "
                f"{config.num_channels}"
            )
        demand = Demand(DEVICE, device_price_wei, lease.channels_per_device, channel_price_wei)
        return await self._demand(sequencer, [demand] * lease.devices, slot, refused)

    # -- 2. training ---------------------------------------------------------------------
    def train(
        self,
        epoch: int,
        working: Mapping[int, int],
        spectrum_hz: Mapping[int, float],
        channel_width_hz: Mapping[int, int],
    ) -> RoundDone | None:
        """Train one round with the ``working`` devices (index -> region). Each region's
        leased uplink spectrum is shared by its working devices (one channel's width when
        none settled); None when there is nothing to train."""
        if not self.training or not working:
            return None
        assert self.job is not None, "a coordinator with rounds to run has a job"
        per_region: dict[int, list[int]] = {}
        for k in working:
            per_region.setdefault(working[k], []).append(k)
        bandwidth = {
            k: spectrum_hz.get(r, channel_width_hz[r]) / len(ks)
            for r, ks in per_region.items()
            for k in ks
        }
        done = self.job.train(sorted(working), bandwidth)
        result = done.result
        row = {
            "kind": "round",
            "epoch": epoch,
            "round": self.round,
            "loss": round(result.test_loss, 6),
            "accuracy": result.test_accuracy,
            "delay_s": round(done.delay_s, 6),
            "energy_j": round(done.energy_j, 6),
            "epsilon": round(done.epsilon, 4),
            "devices": len(working),
            # what the privacy cost at the server (dB per symbol, mean over the round's
            # token uplinks) and the scheduler's virtual delay queue Q after the round (s)
            "received_snr_db": _finite(done.received_snr_db, 2),
            "queue_s": _finite(self.job.scheduler.queue, 6),
        }
        self.round += 1
        return RoundDone(row, self._update_hash(), result.test_loss, result.test_accuracy)

    def _update_hash(self) -> bytes:
        assert self.job is not None
        digest = hashlib.sha256()
        lora = self.job.trainer.global_lora
        for name in sorted(lora):
            digest.update(lora[name].detach().numpy().tobytes())
        return digest.digest()

    # -- 3. the leases' end ----------------------------------------------------------------
    def close_leases(
        self,
        ledger: TieredLedger,
        leases: Sequence[tuple[int, LeaseRecord]],
        dropped_sellers: set[str],
        refused: Callable[[str], None] = lambda note: None,
    ) -> tuple[dict[int, int], int]:
        """Sign the completion of every lease but those of sellers that dropped out,
        which it reports as defaulted, and hand the steps to each region's lifecycle
        book: the region's next settlement carries them (a region that is down carries
        them when it is back). Returns (defaults per region, wei owed to sellers)."""
        defaults: dict[int, int] = {}
        spent = 0
        for r, record in leases:
            default = record.kind == Kind.COMPUTE and record.seller in dropped_sellers
            action = StepAction.DEFAULT if default else StepAction.COMPLETE
            try:
                ledger.regions[r].sequencer.steps.submit(self.traders[r].step(record, action))
            except StepRefused as exc:
                refused(f"region {r}: {action.name.lower()} refused: {exc.reason}")
                continue
            if default:
                defaults[r] = defaults.get(r, 0) + 1
            else:
                spent += record.price_wei
        return defaults, spent

    # -- 4. confirmation ---------------------------------------------------------------------
    async def confirm(
        self, done: RoundDone, spent_wei: int, write_line: Callable[[str], None]
    ) -> None:
        """Confirm the round on the root: ``write_line`` first keeps the exact metrics line
        whose hash the root records, so an audit can check it."""
        assert self.root is not None, "join first"
        line = json.dumps(done.row, sort_keys=True)
        write_line(line)
        spend = min(spent_wei, self.budget_left_wei)
        self.budget_left_wei -= spend
        await self.root.binding.transact(
            "confirm_round",
            self.job_id,
            done.row["round"],
            done.update_hash,
            hashlib.sha256(line.encode()).digest(),
            spend,
            gas=300_000,
        )


@dataclass
class Jobs:
    """The training coordinators of a run, each with its own job, budget and strategy;
    they bid for the same devices and bands, so each region's mechanism decides between
    them. Each trains with the devices it won and closes and confirms only its leases."""

    coordinators: list[Coordinator]
    last: dict[int, tuple[float, float | None]] = field(default_factory=dict)  # loss, accuracy

    @property
    def first(self) -> Coordinator:
        return self.coordinators[0]

    @staticmethod
    def address(coordinator: Coordinator) -> str:
        return next(iter(coordinator.traders.values())).address

    def own(
        self, coordinator: Coordinator, leases: Sequence[tuple[int, LeaseRecord]]
    ) -> list[tuple[int, LeaseRecord]]:
        """The leases ``coordinator`` bought (other buyers' leases are theirs to close)."""
        me = self.address(coordinator)
        return [(r, rec) for r, rec in leases if rec.buyer == me]

    async def bid(
        self,
        ledger: TieredLedger,
        slot: int,
        on_offer: Mapping[int, int],
        offered_hz: float,
        refused: Callable[[str], None],
    ) -> int:
        """Every coordinator bids for slot ``slot``; returns the orders admitted."""
        admitted = 0
        for coordinator in self.coordinators:
            admitted += await coordinator.bid(ledger, slot, on_offer, offered_hz, refused)
        return admitted

    def train(
        self,
        epoch: int,
        working: Mapping[int, int],
        leased: Mapping[int, tuple[int, LeaseRecord]],
        leases: Sequence[tuple[int, LeaseRecord]],
        channel_width_hz: Mapping[int, int],
        note: Callable[[str], None],
    ) -> list[RoundDone | None]:
        """Each coordinator trains a round with the ``working`` devices (index -> region)
        whose lease (``leased``: index -> (region, lease)) it holds, on the spectrum it
        leased; one entry per coordinator (None: no round)."""
        dones: list[RoundDone | None] = []
        for c in self.coordinators:
            me = self.address(c)
            mine = {k: r for k, r in working.items() if leased[k][1].buyer == me}
            if c.training and not mine:
                note("no device leases settled: the round waits")
            spectrum_hz: dict[int, float] = {}
            for r, rec in self.own(c, leases):
                if rec.kind == Kind.SPECTRUM:
                    spectrum_hz[r] = spectrum_hz.get(r, 0) + rec.units * channel_width_hz[r]
            done = c.train(epoch, mine, spectrum_hz, channel_width_hz)
            if done is not None:
                self.last[c.job_id] = done.loss, done.accuracy
                if len(self.coordinators) > 1:  # which job's round (one job: as it always was)
                    done.row["job"] = c.job_id
            dones.append(done)
        return dones

    def close_leases(
        self,
        ledger: TieredLedger,
        leases: Sequence[tuple[int, LeaseRecord]],
        dropped_sellers: set[str],
        refused: Callable[[str], None],
    ) -> tuple[dict[int, int], list[int]]:
        """Every coordinator closes its own leases; returns (defaults per region, the wei
        each coordinator owes its sellers)."""
        defaults: dict[int, int] = {}
        spent = []
        for c in self.coordinators:
            mine, owed = c.close_leases(ledger, self.own(c, leases), dropped_sellers, refused)
            for r, n in mine.items():
                defaults[r] = defaults.get(r, 0) + n
            spent.append(owed)
        return defaults, spent

    async def confirm(
        self,
        dones: Sequence[RoundDone | None],
        spent_wei: Sequence[int],
        write_line: Callable[[str], None],
    ) -> None:
        for c, done, spent in zip(self.coordinators, dones, spent_wei, strict=True):
            if done is not None:
                await c.confirm(done, spent, write_line)

    def observe(self, clearing_price_wei: int) -> None:
        for c in self.coordinators:
            c.strategy.observe(clearing_price_wei)

    def summary(self) -> list[dict[str, Any]]:
        """Each job's figures for ``summary.json`` (several coordinators)."""
        return [
            {
                "job_id": c.job_id,
                "address": self.address(c),
                "rounds": c.round,
                "final_loss": self.last.get(c.job_id, (None, None))[0],
                "final_accuracy": self.last.get(c.job_id, (None, None))[1],
                "budget_left_wei": str(c.budget_left_wei),
            }
            for c in self.coordinators
        ]


def _finite(value: float, digits: int) -> float | None:
    """``value`` rounded, or None where it is not a number (JSON has no NaN)."""
    return round(value, digits) if math.isfinite(value) else None
