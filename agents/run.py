"""A run: agents bid on the sharded ledger and the ledger schedules the training rounds.

Time. Every chain's block timestamps follow one simulated clock: epoch ``k``
leases slot ``s = base + k`` (``[s L, (s+1) L)``, ``L = epoch_length_s``). Its books
are settled before the slot starts; at ``s L + L/4`` the devices that are working
send heartbeats; the round runs; at ``s L + 3L/4`` the coordinator completes its
leases (sellers are paid) and reports the devices that dropped out (their bond
is slashed), and the round is confirmed on the root. All agents share one event
loop.

The run directory holds ``scenario.toml`` (a copy), ``chains/`` (embedded),
``ledger.json``, ``metrics.csv`` (one row per region per epoch and one per
round, written as they happen), ``rounds.jsonl`` (each confirmed round's metrics,
byte for byte what the root's ``RoundConfirmed.metrics_hash`` hashes),
``summary.json`` and ``history.sha256`` (the sha256 of the full ordered lease
history, the same for the same scenario and seed on the embedded backend).
Ctrl-C stops between steps and still writes a consistent, auditable run directory.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ledger.errors import LedgerError
from ledger.market import Kind, LeaseRecord, LeaseState, Role
from ledger.region import OrderRefused, SignedBid
from ledger.tiered import RegionSpec, TieredLedger, derive_key
from ledger.trader import Trader
from training.channel import ChannelState, DeviceProfile
from training.config import ChannelConfig, EncoderConfig, FederatedConfig, LoraSettings
from training.federated import FederatedTrainer
from training.models import ServerModel, build_encoder, load_minilm
from training.privacy import RdpAccountant, noise_multiplier_from_snr
from training.scheduler import LyapunovScheduler, SchedulerConfig
from training.tasks import channel_prediction_task, sensor_task

from .roles import (
    DEVICE,
    SERVER,
    Agent,
    EdgeDevice,
    EdgeServer,
    SatelliteOperator,
    TerrestrialOperator,
)
from .scenario import Scenario
from .strategies import make_strategy

__all__ = ["EpochReport", "Simulation"]

ETH = 10**18
UNIT_WEI = 10**12
METRICS_FIELDS = [
    "kind",
    "epoch",
    "region",
    "clearing_price_wei",
    "utilisation",
    "welfare_wei",
    "leases",
    "defaults",
    "round",
    "loss",
    "accuracy",
    "delay_s",
    "energy_j",
    "epsilon",
    "devices",
    "note",
]


@dataclass
class EpochReport:
    """What one epoch did, for the progress display and the summary."""

    epoch: int
    leases: int = 0
    defaults: int = 0
    prices: dict[int, int] = field(default_factory=dict)
    round_loss: float | None = None
    round_accuracy: float | None = None
    orders: int = 0  # offers and bids the sequencers admitted
    submit_s: float = 0.0  # signing and admission of every order
    wall_s: float = 0.0  # the whole epoch, all regions
    notes: list[str] = field(default_factory=list)


class Simulation:
    """Builds the ledger and the agents from a scenario and runs the epochs."""

    def __init__(
        self,
        scenario: Scenario,
        out: Path,
        *,
        backend: str = "embedded",
        manifest: Path | None = None,
        progress: Callable[[EpochReport], None] | None = None,
    ) -> None:
        self.scenario = scenario
        self.out = out
        self.backend = backend
        self.manifest = manifest
        self.progress = progress or (lambda report: None)
        self.rng = np.random.default_rng(scenario.seed)
        self.length = scenario.epoch_length_s
        self.base_slot = scenario.genesis_timestamp // self.length + 2
        self.reports: list[EpochReport] = []
        self.interrupted = False
        self.round = 0

    # -- set-up ---------------------------------------------------------------------------------
    def _specs(self) -> list[RegionSpec]:
        half = self.length // 2
        return [
            RegionSpec(
                region_id=r.id,
                name=r.name,
                mechanism=r.mechanism,
                committee_size=r.committee,
                threshold=r.threshold,
                num_channels=r.channels,
                channel_width_hz=r.channel_width_hz,
                spectrum_low_hz=r.spectrum_low_hz,
                protected_channels=r.protected_channels,
                epoch_length_s=self.length,
                heartbeat_interval_s=half,
                claim_window_s=self.length,
                min_bond_wei=10**15,
            )
            for r in self.scenario.regions
        ]

    def _agents(self) -> list[Agent]:
        sc, seed = self.scenario, self.scenario.seed
        regions = [r.id for r in sc.regions]
        crashes = {c.agent: c.epoch for c in sc.failures.agent_crashes}
        agents: list[Agent] = []

        def make(cls: type[Agent], name: str, role: Role, home: tuple[int, ...], **kw: Any) -> None:
            agents.append(
                cls(
                    name=name,
                    role=role,
                    key=derive_key(seed, f"agent-{name}"),
                    regions=home,
                    rng=np.random.default_rng([seed, len(agents)]),
                    crash_epoch=crashes.get(name),
                    **kw,
                )
            )

        p = sc.participants
        by_region = {r.id: r for r in sc.regions}
        terrestrial_in = {
            r: [i for i in range(p.terrestrial_operators) if regions[i % len(regions)] == r]
            for r in regions
        }
        for i in range(p.terrestrial_operators):
            r = regions[i % len(regions)]
            share = terrestrial_in[r]
            width = max(1, by_region[r].channels // 2 // len(share))  # lower half of the band
            lo = share.index(i) * width
            make(
                TerrestrialOperator,
                f"terrestrial-{i}",
                Role.TERRESTRIAL,
                (r,),
                lo=lo,
                hi=min(by_region[r].channels, lo + width),
                reserve_wei=int(UNIT_WEI * self.rng.uniform(0.5, 1.5)),
            )
        for i in range(p.satellite_operators):
            make(
                SatelliteOperator,
                f"satellite-{i}",
                Role.SATELLITE,
                tuple(regions),
                pass_epochs=2,
                lo=0,
                hi=0,
                reserve_wei=int(UNIT_WEI * self.rng.uniform(0.3, 1)),
            )
        for i in range(p.edge_servers):
            make(
                EdgeServer,
                f"edge-server-{i}",
                Role.EDGE_SERVER,
                (regions[i % len(regions)],),
                reserve_wei=int(2 * UNIT_WEI * self.rng.uniform(0.5, 1.5)),
            )
        for i in range(p.edge_devices):
            make(
                EdgeDevice,
                f"device-{i}",
                Role.EDGE_DEVICE,
                (regions[i % len(regions)],),
                index=i,
                reserve_wei=int(UNIT_WEI * self.rng.uniform(0.5, 2)),
            )
        # satellites take the upper half of every band they pass over
        for agent in agents:
            if isinstance(agent, SatelliteOperator):
                agent.lo = min(by_region[r].channels for r in regions) // 2
                agent.hi = min(by_region[r].channels for r in regions)
        return agents

    async def _join(self) -> None:
        funders = {r: rt.client for r, rt in self.ledger.regions.items()}
        for agent in self.agents:
            for r in agent.regions:
                rt = self.ledger.regions[r]
                trader = Trader(agent.key, rt.market, funders[r])
                bond = 10**16 if agent.role == Role.EDGE_DEVICE else 10**17
                await trader.join(agent.role, gas_money_wei=5 * 10**16, bond_wei=bond)
                agent.traders[r] = trader
        sc = self.scenario
        self.coordinator: dict[int, Trader] = {}
        deposit = int(sc.job.budget_eth * ETH) // len(sc.regions)
        for r, rt in self.ledger.regions.items():
            trader = Trader(derive_key(sc.seed, "coordinator"), rt.market, funders[r])
            await trader.join(Role.COORDINATOR, gas_money_wei=ETH, deposit_wei=deposit)
            self.coordinator[r] = trader
        root_client = self.ledger.root.binding.client
        coord_root = self.ledger.root.as_client(
            Trader(
                derive_key(sc.seed, "coordinator"),
                self.ledger.regions[sc.regions[0].id].market,
                root_client,
            ).client
        )
        await root_client.send(coord_root.binding.client.address, value=2 * ETH, gas=21_000)
        spec_hash = hashlib.sha256(sc.path.read_bytes()).digest()
        receipt = await coord_root.binding.transact(
            "post_job",
            spec_hash,
            sc.job.rounds,
            coord_root.binding.client.address,
            value=ETH,
            gas=400_000,
        )
        self.root_coordinator = coord_root
        self.job_id = int(receipt.event("JobPosted").args["job_id"])
        self.job_remaining_wei = ETH

    def _training(self) -> None:
        sc = self.scenario
        n = sc.participants.edge_devices
        if sc.job.task == "sensor":
            task = sensor_task(examples=max(2000, 60 * n), test=500, seed=sc.seed)
        else:
            task = channel_prediction_task(examples=max(1500, 50 * n), test=400, seed=sc.seed)
        torch.manual_seed(sc.seed)
        encoder = (
            load_minilm()
            if sc.job.model == "minilm"
            else build_encoder(EncoderConfig(), seed=sc.seed)
        )
        lora = LoraSettings(rank=sc.job.lora_rank, alpha=2 * sc.job.lora_rank)
        self.trainer = FederatedTrainer(
            task,
            ServerModel(encoder, lora),
            FederatedConfig(
                devices=n,
                devices_per_round=min(n, sc.job.devices_per_round),
                rounds=sc.job.rounds,
                seed=sc.seed,
                clip_norm=sc.job.clip_norm,
            ),
        )
        ch_rng = np.random.default_rng([sc.seed, 7])
        self.profiles = [
            DeviceProfile(
                distance_m=float(ch_rng.uniform(30, 250)),
                flops_per_s=float(ch_rng.uniform(5e9, 3e10)),
                examples=self.trainer.examples[i],
            )
            for i in range(n)
        ]
        self.channel = ChannelState(ChannelConfig(), self.profiles, ch_rng)
        self.scheduler = LyapunovScheduler(
            SchedulerConfig(
                v=sc.job.v,
                delay_budget_s=sc.job.delay_budget_s,
                upload_bits=8e6,
                compute_flops=2e9,
                max_devices=min(n, sc.job.devices_per_round),
            )
        )
        self.accountants = [RdpAccountant() for _ in range(n)]
        self.strategy = make_strategy(sc.coordinator_strategy, sc.shade)

    # -- one epoch ---------------------------------------------------------------------------
    def window(self, epoch: int) -> tuple[int, int]:
        slot = self.base_slot + epoch
        return slot * self.length, (slot + 1) * self.length

    async def _set_time(self, timestamp: int) -> None:
        for backend in [
            self.ledger.root_backend,
            *(rt.backend for rt in self.ledger.regions.values()),
        ]:
            head = int((await backend.web3.eth.get_block("latest"))["timestamp"])
            if timestamp > head:
                await backend.mine(timestamp)

    def _gain_over_noise(self) -> np.ndarray:
        c = self.channel.config
        n0 = 10 ** ((c.noise_psd_dbm_per_hz - 30) / 10)
        power = np.array([p.tx_power_w for p in self.profiles])
        return power * self.channel.path_gain() / n0

    async def _submit(self, epoch: int, report: EpochReport) -> dict[int, int]:
        """Sellers offer; the coordinator decides with the Lyapunov scheduler and bids.
        Returns the spectrum channels offered per region (for utilisation)."""
        sc = self.scenario
        offered: dict[int, int] = {}
        device_offers: set[int] = set()
        slot = self.base_slot + epoch
        for r, rt in self.ledger.regions.items():
            await rt.sequencer.open(slot)
            offered[r] = 0
            window = rt.sequencer.window(slot)
            for agent in self.agents:
                if r not in agent.regions or not agent.alive(epoch):
                    continue
                for signed in agent.offers(epoch, r, window):
                    try:
                        await rt.sequencer.submit_offer(signed)
                    except OrderRefused as exc:
                        report.notes.append(f"{agent.name}: {exc.reason}")
                        continue
                    report.orders += 1
                    if signed.offer.kind == Kind.SPECTRUM:
                        offered[r] += signed.offer.hi - signed.offer.lo
                    elif isinstance(agent, EdgeDevice):
                        device_offers.add(agent.index)
        if self.round >= sc.job.rounds or not device_offers:
            return offered
        # what to buy: the scheduler picks devices and bandwidth among those on offer
        self.channel.advance()
        a = self._gain_over_noise()
        bandwidth = (
            sum(offered[r] * self.ledger.regions[r].spec.channel_width_hz for r in offered) or 1.0
        )
        schedule = self.scheduler.decide(
            sorted(device_offers),
            self.trainer.examples,
            a,
            [p.flops_per_s for p in self.profiles],
            bandwidth,
        )
        devices = self.devices_by_index
        for r, rt in self.ledger.regions.items():
            chosen = [k for k in schedule.devices if r in devices[k].regions]
            if not chosen:
                continue
            width = rt.spec.channel_width_hz
            per_device = int(
                np.clip(np.mean([schedule.bandwidth_hz[k] for k in chosen]) / width, 1, 4)
            )
            coordinator = self.coordinator[r]
            window = rt.sequencer.window(slot)
            mechanism = rt.spec.mechanism
            spectrum_value = self.strategy.bid_wei(4 * UNIT_WEI)
            compute_value = self.strategy.bid_wei(6 * UNIT_WEI)
            bids: list[SignedBid] = []
            for _ in chosen:
                device_bid = coordinator.bid(Kind.COMPUTE, DEVICE, 0, 1, *window, compute_value)
                if mechanism in ("second_price", "double_auction"):
                    bids.append(device_bid)
                    bids.extend(
                        coordinator.bid(
                            Kind.SPECTRUM, 0, rt.spec.num_channels, 1, *window, spectrum_value
                        )
                        for _ in range(per_device)
                    )
                else:
                    spectrum_bid = coordinator.bid(
                        Kind.SPECTRUM,
                        0,
                        rt.spec.num_channels,
                        per_device,
                        *window,
                        per_device * spectrum_value,
                    )
                    if mechanism == "bundle":
                        await self._try(
                            rt.sequencer.submit_bundle(spectrum_bid, device_bid), report
                        )
                    else:
                        bids.extend([device_bid, spectrum_bid])
            if mechanism != "bundle":
                bids.append(
                    coordinator.bid(
                        Kind.COMPUTE, SERVER, 0, 1, *window, self.strategy.bid_wei(6 * UNIT_WEI)
                    )
                )
            for bid in bids:
                await self._try(rt.sequencer.submit_bid(bid), report)
        return offered

    async def _try(self, coro: Any, report: EpochReport) -> None:
        try:
            await coro
        except OrderRefused as exc:
            report.notes.append(f"coordinator: {exc.reason}")
        else:
            report.orders += 1

    async def run_epoch(self, epoch: int) -> EpochReport:
        sc = self.scenario
        report = EpochReport(epoch)
        start = self.window(epoch)[0]
        began = time.perf_counter()
        offered = await self._submit(epoch, report)
        report.submit_s = time.perf_counter() - began
        outage = sc.failures.region_outage
        skip = (
            frozenset({outage.region})
            if outage and outage.from_epoch <= epoch < outage.to_epoch
            else frozenset()
        )
        outcomes = await self.ledger.settle_all(checkpoint_every=sc.checkpoint_every, skip=skip)
        devices = self.devices_by_address
        mine: list[tuple[int, LeaseRecord]] = []
        participants: dict[int, tuple[int, LeaseRecord]] = {}
        spectrum_hz: dict[int, float] = {}
        for r, outcome in outcomes.items():
            if not outcome.settled:
                report.notes.append(f"region {r}: {outcome.reason}")
            for record in outcome.leases:
                mine.append((r, record))
                if record.kind == Kind.COMPUTE and record.seller in devices:
                    participants[devices[record.seller].index] = (r, record)
                elif record.kind == Kind.SPECTRUM:
                    spectrum_hz[r] = (
                        spectrum_hz.get(r, 0)
                        + record.units * self.ledger.regions[r].spec.channel_width_hz
                    )
            if outcome.settled and outcome.clearing_price_wei:
                report.prices[r] = outcome.clearing_price_wei
        report.leases = len(mine)
        # dropouts: a device that drops mid-round sends no heartbeat and trains nothing
        dropped = {
            k for k in sorted(participants) if self.rng.random() < sc.failures.device_dropout
        }
        await self._set_time(start + self.length // 4)
        for k, (r, record) in sorted(participants.items()):
            device = self.devices_by_index[k]
            if k not in dropped and device.alive(epoch):
                await device.traders[r].market.lifecycle("heartbeat", record)
        working = [
            k
            for k in sorted(participants)
            if k not in dropped and self.devices_by_index[k].alive(epoch)
        ]
        round_row = await self._train(epoch, working, participants, spectrum_hz, report)
        await self._set_time(start + 3 * self.length // 4)
        defaults: dict[int, int] = {}
        spent = 0
        for r, record in mine:
            coordinator = self.coordinator[r].market
            seller = devices.get(record.seller) if record.kind == Kind.COMPUTE else None
            if seller is not None and seller.index in dropped:
                await coordinator.lifecycle("report_default", record)
                defaults[r] = defaults.get(r, 0) + 1
                seller.resting_until = epoch + 1  # replaced next epoch
            else:
                await coordinator.lifecycle("complete", record)
                spent += record.price_wei
        report.defaults = sum(defaults.values())
        if round_row is not None:
            await self._confirm(round_row, spent)
        for r, outcome in outcomes.items():
            channels = offered.get(r, 0)
            used = sum(rec.units for rec in outcome.leases if rec.kind == Kind.SPECTRUM)
            self._row(
                kind="region",
                epoch=epoch,
                region=r,
                clearing_price_wei=outcome.clearing_price_wei,
                utilisation=round(used / channels, 4) if channels else 0.0,
                welfare_wei=outcome.welfare_wei,
                leases=len(outcome.leases),
                defaults=defaults.get(r, 0),
                note="" if outcome.settled else outcome.reason,
            )
        if round_row is not None:
            self._row(**round_row)
        if report.prices:
            self.strategy.observe(max(report.prices.values()))
        report.wall_s = time.perf_counter() - began
        return report

    async def _train(
        self,
        epoch: int,
        working: list[int],
        participants: dict[int, tuple[int, LeaseRecord]],
        spectrum_hz: dict[int, float],
        report: EpochReport,
    ) -> dict[str, Any] | None:
        if self.round >= self.scenario.job.rounds:
            return None
        if not working:
            report.notes.append("no device leases settled: the round waits")
            return None
        a = self._gain_over_noise()
        bandwidth = np.zeros(len(self.profiles))
        per_region: dict[int, list[int]] = {}
        for k in working:
            per_region.setdefault(participants[k][0], []).append(k)
        for r, ks in per_region.items():
            for k in ks:  # the region's leased uplink spectrum, shared by its devices
                bandwidth[k] = spectrum_hz.get(
                    r, self.ledger.regions[r].spec.channel_width_hz
                ) / len(ks)
        clip = self.trainer.config.clip_norm
        values = self.trainer.task.window * self.trainer.server.hidden
        noise = [0.0] * len(self.profiles)
        for k in working:
            snr = a[k] / bandwidth[k]
            z = noise_multiplier_from_snr(snr, values)
            if clip > 0:
                noise[k] = clip * z
                q = min(1.0, self.trainer.config.batch_size / self.trainer.examples[k])
                self.accountants[k].step(z, q, self.trainer.config.local_steps)
        self.trainer.noise_std = noise
        result = self.trainer.run_round(working)
        delay, energy = 0.0, 0.0
        for k in working:
            p = self.profiles[k]
            rate = bandwidth[k] * np.log2(1 + a[k] / bandwidth[k])
            compute_s = 2e9 / p.flops_per_s
            tx_s = 8 * result.uplink_bytes_per_device[k] / rate
            delay = max(delay, compute_s + tx_s)
            energy += p.compute_power_w * compute_s + p.tx_power_w * tx_s
        self.scheduler.observe(delay)
        epsilon = (
            max((acc.epsilon(1e-5) for acc in self.accountants), default=0.0)
            if clip > 0
            else float("inf")
        )
        report.round_loss, report.round_accuracy = result.test_loss, result.test_accuracy
        row = {
            "kind": "round",
            "epoch": epoch,
            "round": self.round,
            "loss": round(result.test_loss, 6),
            "accuracy": result.test_accuracy,
            "delay_s": round(delay, 6),
            "energy_j": round(energy, 6),
            "epsilon": round(epsilon, 4),
            "devices": len(working),
            "_update": self._update_hash(),
        }
        self.round += 1
        return row

    def _update_hash(self) -> bytes:
        digest = hashlib.sha256()
        for name in sorted(self.trainer.global_lora):
            digest.update(self.trainer.global_lora[name].detach().numpy().tobytes())
        return digest.digest()

    async def _confirm(self, row: dict[str, Any], spent_wei: int) -> None:
        update = row.pop("_update")
        line = json.dumps(row, sort_keys=True)
        metrics = hashlib.sha256(line.encode()).digest()
        # the exact bytes whose hash the root confirms, so an audit can check the metrics
        with open(self.out / "rounds.jsonl", "a") as f:
            f.write(line + "\n")
        spend = min(spent_wei, self.job_remaining_wei)
        self.job_remaining_wei -= spend
        await self.root_coordinator.binding.transact(
            "confirm_round", self.job_id, row["round"], update, metrics, spend, gas=300_000
        )

    # -- outputs -----------------------------------------------------------------------------
    def _row(self, **values: Any) -> None:
        self._metrics.writerow({k: values.get(k, "") for k in METRICS_FIELDS})
        self._metrics_file.flush()

    async def history(self) -> list[dict[str, Any]]:
        """Every lease of every region in chain order, with its final state."""
        rows = []
        for r, rt in sorted(self.ledger.regions.items()):
            await rt.sequencer.sync()
            for record in sorted(
                rt.sequencer.records.values(), key=lambda rec: (rec.epoch, rec.lease_id)
            ):
                rows.append(
                    {
                        "region": r,
                        "epoch": record.epoch,
                        "kind": record.kind,
                        "seller": record.seller,
                        "buyer": record.buyer,
                        "nonce": record.nonce,
                        "first": record.first,
                        "units": record.units,
                        "start": record.start,
                        "end": record.end,
                        "price_wei": str(record.price_wei),
                        "state": LeaseState(
                            rt.sequencer.lease_words[record.lease_id] & 0xFF
                        ).name.lower(),
                    }
                )
        return rows

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        sc = self.scenario
        self.out.mkdir(parents=True, exist_ok=True)
        if (self.out / "ledger.json").exists():
            raise LedgerError(f"{self.out} already holds a run: choose another --out")
        shutil.copyfile(sc.path, self.out / "scenario.toml")
        started = time.perf_counter()
        self.ledger = await TieredLedger.create(
            self.out,
            self._specs(),
            backend=self.backend,
            manifest=self.manifest,
            seed=sc.seed,
            genesis_timestamp=sc.genesis_timestamp,
        )
        self._metrics_file = open(self.out / "metrics.csv", "w", newline="")  # noqa: SIM115
        self._metrics = csv.DictWriter(self._metrics_file, fieldnames=METRICS_FIELDS)
        self._metrics.writeheader()
        try:
            self.agents = self._agents()
            self.devices_by_index = {a.index: a for a in self.agents if isinstance(a, EdgeDevice)}
            self._training()
            await self._set_time(self.window(0)[0] - self.length)
            await self._join()
            self.devices_by_address = {
                a.traders[a.regions[0]].address: a for a in self.devices_by_index.values()
            }
            for epoch in range(sc.epochs):
                await self._set_time(self.window(epoch)[0] - self.length // 4)
                report = await self.run_epoch(epoch)
                self.reports.append(report)
                self.progress(report)
        except (KeyboardInterrupt, asyncio.CancelledError):
            self.interrupted = True
        finally:
            self._metrics_file.close()
        wall_s = time.perf_counter() - started
        while True:  # a Ctrl-C while finishing must not leave the directory half-written
            try:
                return await self._finish(wall_s)
            except (KeyboardInterrupt, asyncio.CancelledError):
                self.interrupted = True

    async def _finish(self, wall_s: float) -> dict[str, Any]:
        history = await self.history()
        blob = json.dumps(history, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(blob).hexdigest()
        (self.out / "history.sha256").write_text(digest + "\n")
        rounds = [r for r in self.reports if r.round_loss is not None]
        satellites = [a for a in self.agents if isinstance(a, SatelliteOperator)]
        summary = {
            "scenario": str(self.scenario.path),
            "backend": self.backend,
            "seed": self.scenario.seed,
            "epochs_run": len(self.reports),
            "interrupted": self.interrupted,
            "agents": len(self.agents) + 1,
            "leases": len(history),
            "defaults": sum(r.defaults for r in self.reports),
            "rounds": len(rounds),
            "final_loss": rounds[-1].round_loss if rounds else None,
            "final_accuracy": rounds[-1].round_accuracy if rounds else None,
            "satellite_signatures": sum(s.signatures for s in satellites),
            "history_sha256": digest,
            "wall_s": round(wall_s, 2),
            "lease_states": {
                s: sum(1 for h in history if h["state"] == s)
                for s in sorted({h["state"] for h in history})
            },
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        await self.ledger.close()
        return summary
