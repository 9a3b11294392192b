"""A run: the epoch loop and the failures it injects; the agents do the rest.

Time. Every chain's block timestamps follow one simulated clock: epoch ``k``
leases slot ``s = base + k`` (``[s L, (s+1) L)``, ``L = epoch_length_s``). Its books
are settled before the slot starts; at ``s L + L/4`` the devices that are working
sign heartbeats; the round runs; at ``s L + 3L/4`` the coordinator signs the
completion of its leases (sellers are paid) and reports the devices that dropped
out (their bond is slashed), and the round is confirmed on the root. These steps
go to each region's chain with its next settlement (one transaction per region per
epoch; the last epoch's in one batch at the end). All agents share one event loop.

Who does what: sellers offer (:mod:`agents.roles`), the coordinators (one per
training job) bid, train and confirm (:mod:`agents.coordinator`), the other spectrum
buyers' orders arrive, wait in a backlog and bid (:mod:`agents.buyers`, with
``[demand]``), all through the same sequencers; :mod:`agents.population` builds them
from the scenario, :mod:`agents.recorder` writes the run directory. Failures
(device dropouts, a region outage, agent crashes) are injected here; regions whose
node stops answering are taken out and brought back by :mod:`agents.outages`, and
leases nobody claimed are expired by each region's committee.
Ctrl-C stops between steps and still writes a consistent, auditable run directory.
After every epoch :mod:`agents.resume` checkpoints the run, so that a killed or
interrupted run continues with ``resume=True`` (``simulate --resume``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ledger.census import chain_transactions, peak_rss_mib
from ledger.chain import ChainFactory, EmbeddedChains
from ledger.errors import NODE_ERRORS
from ledger.mechanisms import Book
from ledger.records import Kind, LeaseRecord, channel_mask
from ledger.region import EpochOutcome, OrderRefused, StepRefused
from ledger.tiered import TieredLedger, derive_key

from .beams import BeamBuyer, Beams
from .buyers import DemandSide
from .coordinator import ETH, Coordinator, Jobs
from .errors import RootUnavailable
from .outages import Outages
from .population import Population, build_job, build_population, join_all
from .recorder import Recorder, lease_history
from .resume import Checkpoints
from .roles import EdgeDevice
from .scenario import Scenario
from .strategies import make_strategy

__all__ = ["EpochReport", "Simulation"]


@dataclass
class EpochReport:
    """What one epoch did, for the progress display and the summary."""

    epoch: int
    leases: int = 0
    defaults: int = 0
    prices: dict[int, int] = field(default_factory=dict)
    round_loss: float | None = None
    round_accuracy: float | None = None
    offers: int = 0  # offers the sequencers admitted
    bids: int = 0  # bids the sequencers admitted
    submit_s: float = 0.0  # signing and admission of every order
    settle_s: float = 0.0  # every region's settlement
    train_s: float = 0.0  # the training round (0 when none ran)
    wall_s: float = 0.0  # the whole epoch, all regions
    notes: list[str] = field(default_factory=list)


class Simulation:
    """Runs a scenario's epochs on a tiered ledger; ``chains`` opens its chains
    (default: embedded chains in the run directory); ``resume`` continues the run in
    ``out`` from its last checkpoint."""

    ledger: TieredLedger  # brought up (or reopened) by ``store.begin``

    def __init__(
        self,
        scenario: Scenario,
        out: Path,
        *,
        chains: ChainFactory | None = None,
        progress: Callable[[EpochReport], None] | None = None,
        resume: bool = False,
        books: Callable[[Book], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.out = out
        self.chains = chains or EmbeddedChains(
            out / "chains", genesis_timestamp=scenario.genesis_timestamp
        )
        self.progress = progress or (lambda report: None)
        # each region-epoch's frozen book, as its committee allocated it (compare's
        # replay: agents/experiments/books.py); picklable, as a checkpoint keeps it
        self.books = books
        self.rng = np.random.default_rng(scenario.seed)  # failure injection (and reserves)
        self.length = scenario.epoch_length_s
        self.base_slot = scenario.genesis_timestamp // self.length + 2
        self.recorder = Recorder(out)
        self.reports: list[EpochReport] = []
        self.interrupted = False
        self.stopped = ""  # why the run stopped early, when it did
        # a settlement is a few requests: past six request limits its region is late
        self.settle_timeout_s = 6 * float(getattr(self.chains, "timeout_s", 10.0))
        self.scenario_name = str(scenario.path)
        self.store = Checkpoints(self, resume)

    # -- set-up ---------------------------------------------------------------------------------
    async def _set_up(self) -> None:
        sc = self.scenario
        self.population: Population = build_population(sc, self.rng)
        self.devices = self.population.devices
        self.jobs = Jobs([_coordinator(sc, k) for k in range(sc.participants.coordinators)])
        self.coordinator = self.jobs.first  # what a checkpoint names the job by
        self.demand = DemandSide.of(sc.demand, self.population.buyers, sc.seed)
        self.beams = _beams(sc, self.population)
        await self._set_time(self.window(0)[0] - self.length)
        deposit = int(sc.job.budget_eth * ETH) // len(sc.regions)
        entries = [c.joiners(self.ledger, deposit) for c in self.jobs.coordinators]
        buying = {r: [e[r] for e in entries] for r in entries[0]}
        await join_all(self.ledger, self.population, buying)
        for c in self.jobs.coordinators:
            await c.post_job(self.ledger, spec_hash=hashlib.sha256(sc.path.read_bytes()).digest())
        self.device_of = {d.traders[d.regions[0]].address: d for d in self.devices.values()}

    # -- one epoch ---------------------------------------------------------------------------
    def window(self, epoch: int) -> tuple[int, int]:
        slot = self.base_slot + epoch
        return slot * self.length, (slot + 1) * self.length

    async def _set_time(self, timestamp: int) -> None:
        """Every chain's clock to ``timestamp``; a region whose node is gone is down."""
        try:
            await _advance(self.ledger.root_backend, timestamp)
        except NODE_ERRORS as exc:
            raise Outages.root_lost(exc) from exc
        for r, rt in self.ledger.regions.items():
            if r in self.outages.unanswered:
                continue
            try:
                await _advance(rt.backend, timestamp)
            except NODE_ERRORS as exc:
                self.outages.lost(r, exc)

    async def run_epoch(self, epoch: int) -> EpochReport:
        sc, jobs, demand = self.scenario, self.jobs, self.demand
        report = EpochReport(epoch)
        start = self.window(epoch)[0]
        began = time.perf_counter()
        self.outages.notes = report.notes
        down = await self.outages.check(self.ledger, epoch)
        for r, found in self.outages.found:  # their epochs' rows said "not settled"
            self.recorder.region_row(found.epoch - self.base_slot, r, found, 0, 0)
        self.outages.found.clear()
        offered, on_offer, supply = await _offers(self, epoch, report)
        widths = {r: rt.config.channel_width_hz for r, rt in self.ledger.regions.items()}
        slot = self.base_slot + epoch
        sequencers = {r: rt.sequencer for r, rt in self.ledger.regions.items()}
        hz = sum(offered[r] * widths[r] for r in offered)
        report.bids += await jobs.bid(self.ledger, slot, on_offer, hz, report.notes.append)
        if demand is not None:  # the other buyers' orders, through the same sequencers
            report.bids += await demand.bid(epoch, slot, sequencers, supply, report.notes.append)
        beams = getattr(self, "beams", None)
        if beams is not None:  # before the regions settle: a committed part settles with them
            try:
                await beams.propose(
                    self.ledger,
                    epoch,
                    slot,
                    start + self.length // 4,
                    frozenset(down | self.outages.unanswered),
                    report.notes.append,
                )
            except NODE_ERRORS as exc:
                raise Outages.root_lost(exc) from exc
        report.submit_s = time.perf_counter() - began
        outcomes = await self.ledger.settle_all(
            timeout_s=self.settle_timeout_s,
            checkpoint_every=sc.checkpoint_every,
            skip=down | self.outages.unanswered,
        )
        report.settle_s = time.perf_counter() - began - report.submit_s
        if self.books is not None:
            for book in (o.book for o in outcomes.values() if o.book is not None):
                self.books(book)
        mine, participants = _settled(outcomes, self.device_of, report)
        # dropouts: a device that drops mid-round sends no heartbeat and trains nothing
        dropped = {
            k for k in sorted(participants) if self.rng.random() < sc.failures.device_dropout
        }
        await self._set_time(start + self.length // 4)
        working = _heartbeats(self, participants, dropped, epoch, start + self.length // 4, report)
        if beams is not None:  # a lease a region never voted on aborts at its deadline, now
            try:
                await beams.finish()
            except NODE_ERRORS as exc:
                raise Outages.root_lost(exc) from exc
        trained = time.perf_counter()
        dones = jobs.train(epoch, working, participants, mine, widths, report.notes.append)
        done = next((d for d in dones if d is not None), None)
        report.train_s = time.perf_counter() - trained if done is not None else 0.0
        await self._set_time(start + 3 * self.length // 4)
        gone = {self.devices[k].traders[participants[k][0]].address for k in dropped}
        # completions and defaults go with each region's next settlement, with the
        # expiries its committee finds due (ledger/region/lifecycle.py)
        defaults, spent = jobs.close_leases(self.ledger, mine, gone, report.notes.append)
        if demand is not None:
            demand.close(sequencers, demand.settled(epoch, outcomes), report.notes.append)
        if beams is not None:
            beams.close(sequencers, outcomes, report.notes.append)
        for k in dropped:
            self.devices[k].rest(epoch + 1)  # replaced next epoch
        report.defaults = sum(defaults.values())
        if done is not None:
            report.round_loss, report.round_accuracy = done.loss, done.accuracy
            try:
                await jobs.confirm(dones, spent, self.recorder.round_line)
            except NODE_ERRORS as exc:
                raise Outages.root_lost(exc) from exc
        for r, outcome in outcomes.items():
            figures = demand.row(r) if demand is not None else {}
            self.recorder.region_row(epoch, r, outcome, offered[r], defaults.get(r, 0), **figures)
        for d in dones:
            if d is not None:
                self.recorder.row(**d.row)
        if report.prices:
            jobs.observe(max(report.prices.values()))
        report.wall_s = time.perf_counter() - began
        return report

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        sc = self.scenario
        resumed_at = await self.store.begin()  # the directory claimed, the ledger up
        if not hasattr(self, "outages"):  # a resumed run has its own back
            self.outages = Outages(sc)
        try:
            if resumed_at is None:
                await self._set_up()
                self.store.save(0)
            for epoch in range(resumed_at or 0, sc.epochs):
                await self._set_time(self.window(epoch)[0] - self.length // 4)
                report = await self.run_epoch(epoch)
                self.reports.append(report)
                self.store.save(epoch + 1)
                self.progress(report)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self.interrupted = True
        except RootUnavailable as exc:  # the run cannot go on; what it did stays readable
            self.interrupted, self.stopped = True, str(exc)
        except BaseException:
            self.recorder.release()  # the run failed: resume it once its cause is fixed
            raise
        finally:
            self.recorder.close_metrics()
        wall_s = self.store.wall_s()
        while True:  # a Ctrl-C while finishing must not leave the directory half-written
            try:
                return await self._finish(wall_s)
            except (KeyboardInterrupt, asyncio.CancelledError):
                self.interrupted = True

    async def _finish(self, wall_s: float) -> dict[str, Any]:
        if not self.interrupted:  # the last epoch's steps: no settlement carries them
            try:
                await self.ledger.flush_steps(skip=frozenset(self.outages.unanswered))
            except NODE_ERRORS as exc:
                self.stopped = f"the last lifecycle steps were not sent: {exc}"
        unreachable: set[int] = set()
        history = await lease_history(self.ledger, unreachable)
        digest = self.recorder.write_history(history)
        rounds = [r for r in self.reports if r.round_loss is not None]
        population = getattr(self, "population", Population([]))
        summary = {
            "scenario": self.scenario_name,
            "backend": self.chains.record(self.out)["backend"],
            "seed": self.scenario.seed,
            "epochs_run": len(self.reports),
            "interrupted": self.interrupted,
            "stopped": self.stopped or None,
            "outages": getattr(self, "outages", None) and self.outages.log,
            "unreachable_regions": sorted(unreachable),
            "complete": not self.interrupted,
            "resumes": self.store.resumes,
            "agents": len(population.agents) + 1,
            "leases": len(history),
            "defaults": sum(r.defaults for r in self.reports),
            "rounds": len(rounds),
            "final_loss": rounds[-1].round_loss if rounds else None,
            "final_accuracy": rounds[-1].round_accuracy if rounds else None,
            # what the epsilon covers, and the uplinks sent noise-free that it does not
            "privacy": _privacy(getattr(getattr(self, "coordinator", None), "job", None)),
            "satellite_signatures": sum(s.signatures for s in population.satellites),
            "history_sha256": digest,
            "chain_transactions": await chain_transactions(self.ledger),
            "peak_rss_mib": peak_rss_mib(),
            "wall_s": round(wall_s, 2),
            "time_s": _where_time_went(self.reports, wall_s),
            "lease_states": {
                s: sum(1 for h in history if h["state"] == s)
                for s in sorted({h["state"] for h in history})
            },
            **_demand_and_jobs(self),
        }
        self.recorder.write_summary(summary)
        await self.ledger.close()
        self.store.finish(complete=not self.interrupted)
        return summary


def _coordinator(sc: Scenario, k: int) -> Coordinator:
    """The scenario's k-th training coordinator, with its own job (the first keeps the
    key it always had)."""
    return Coordinator(
        derive_key(sc.seed, "coordinator" if k == 0 else f"coordinator-{k}"),
        build_job(sc),
        make_strategy(sc.coordinator_strategy, sc.shade),
        sc.job.rounds,
    )


async def _offers(
    sim: Simulation, epoch: int, report: EpochReport
) -> tuple[dict[int, int], dict[int, int], dict[int, int]]:
    """Every live seller offers; returns (spectrum channels offered per region, the
    devices on offer: index -> region, the unprotected channels on offer per region that
    is up: the spectrum buyers' capacity)."""
    offered: dict[int, int] = {}
    on_offer: dict[int, int] = {}
    supply: dict[int, int] = {}
    slot = sim.base_slot + epoch
    for r, rt in sim.ledger.regions.items():
        offered[r] = 0
        if r in sim.outages.unanswered:
            continue
        try:
            await rt.sequencer.open(slot)
        except NODE_ERRORS as exc:
            sim.outages.lost(r, exc)
            continue
        window = rt.sequencer.window(slot)
        band = 0
        for agent in sim.population.agents:
            if r not in agent.regions or not agent.alive(epoch):
                continue
            for signed in agent.offers(epoch, r, window):
                try:
                    await rt.sequencer.submit_offer(signed)
                except OrderRefused as exc:
                    report.notes.append(f"{agent.name}: {exc.reason}")
                    continue
                report.offers += 1
                o = signed.offer
                if o.kind == Kind.SPECTRUM:
                    offered[r] += o.hi - o.lo
                    band |= channel_mask(o.lo, o.hi - o.lo)
                elif isinstance(agent, EdgeDevice):
                    on_offer[agent.index] = r
        supply[r] = bin(band & ~rt.config.protected_mask).count("1")
    return offered, on_offer, supply


def _privacy(job: Any) -> dict[str, Any] | None:
    """The job's privacy (training.privacy.UplinkPrivacy.summary); None without a job."""
    return None if job is None else dict(job.privacy.summary())


async def _advance(backend: Any, timestamp: int) -> None:
    head = int((await backend.web3.eth.get_block("latest"))["timestamp"])
    if timestamp > head:
        await backend.mine(timestamp)


def _demand_and_jobs(sim: Simulation) -> dict[str, Any]:
    """The spectrum buyers' totals and each job's figures, for runs that have them (the
    quickstart's summary stays as it was)."""
    extra: dict[str, Any] = {}
    demand, jobs = getattr(sim, "demand", None), getattr(sim, "jobs", None)
    if demand is not None:
        extra["demand"] = demand.summary()
    if jobs is not None and len(jobs.coordinators) > 1:
        extra["jobs"] = jobs.summary()
    beams = getattr(sim, "beams", None)
    if beams is not None:
        extra["cross_region"] = dict(beams.counts)
    return extra


def _beams(sc: Scenario, population: Population) -> Beams | None:
    """The run's cross-region leases (``[cross_region]``), or None."""
    spec = sc.cross_region
    if spec is None:
        return None
    buyer = next(a for a in population.agents if isinstance(a, BeamBuyer))
    narrowest = min(r.num_channels for r in sc.regions)
    return Beams(spec, population.satellites[0], buyer, band_top=narrowest)


def _where_time_went(reports: list[EpochReport], wall_s: float) -> dict[str, float]:
    """The run's wall seconds by phase: set-up and the end (everything outside the
    epochs), signing and admitting orders, settling, training, and the rest of the
    epochs (heartbeats, closing leases, confirmations, checkpoints)."""
    split = {
        "orders": sum(r.submit_s for r in reports),
        "settle": sum(r.settle_s for r in reports),
        "train": sum(r.train_s for r in reports),
    }
    split["epochs_other"] = sum(r.wall_s for r in reports) - sum(split.values())
    split["setup_and_end"] = wall_s - sum(r.wall_s for r in reports)
    return {k: round(v, 2) for k, v in split.items()}


def _heartbeats(
    sim: Simulation,
    participants: dict[int, tuple[int, LeaseRecord]],
    dropped: set[int],
    epoch: int,
    at: int,
    report: EpochReport,
) -> dict[int, int]:
    """Every working device signs its heartbeat at ``at``; its region's lifecycle book
    keeps it for the next settlement. Returns the working devices (index -> region)."""
    working: dict[int, int] = {}
    for k, (r, record) in sorted(participants.items()):
        device = sim.devices[k]
        if k in dropped or not device.alive(epoch) or r in sim.outages.unanswered:
            continue
        try:
            sim.ledger.regions[r].sequencer.steps.submit(device.heartbeat(r, record, at))
        except StepRefused as exc:
            report.notes.append(f"device {k}: heartbeat refused: {exc.reason}")
            continue
        working[k] = r
    return working


def _settled(
    outcomes: dict[int, EpochOutcome],
    device_of: dict[str, EdgeDevice],
    report: EpochReport,
) -> tuple[list[tuple[int, LeaseRecord]], dict[int, tuple[int, LeaseRecord]]]:
    """The epoch's leases (every buyer's); the devices leased (index -> (region, lease))."""
    mine: list[tuple[int, LeaseRecord]] = []
    participants: dict[int, tuple[int, LeaseRecord]] = {}
    for r, outcome in outcomes.items():
        if not outcome.settled:
            report.notes.append(f"region {r}: {outcome.reason}")
        for record in outcome.leases:
            mine.append((r, record))
            if record.kind == Kind.COMPUTE and record.seller in device_of:
                participants[device_of[record.seller].index] = (r, record)
        if outcome.settled and outcome.clearing_price_wei:
            report.prices[r] = outcome.clearing_price_wei
    report.leases = len(mine)
    return mine, participants
