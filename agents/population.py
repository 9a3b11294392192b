"""Who takes part in a run, built from a :class:`~agents.scenario.Scenario`.

Every random choice is drawn from the generators handed in, in a fixed order,
so the same scenario and seed give the same participants: terrestrial
operators, satellite operators, edge servers, edge devices (each with its own
key from the seed and its own generator), the spectrum buyers (uplink, then
operators; with ``[demand]``), then the training job each coordinator buys for (its
task, model, trainer, devices' channels, scheduler). Reserves come from the
scenario's ``[reserves]`` distributions, or the draws scenarios always had.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ledger.records import Joiner, Role
from ledger.region import Trader
from ledger.tiered import TieredLedger, derive_key
from training.channel import ChannelState, DeviceProfile
from training.config import (
    ChannelConfig,
    EncoderConfig,
    FederatedConfig,
    LoraSettings,
    PrivacyConfig,
)
from training.federated import FederatedTrainer
from training.job import ScheduledJob
from training.models import ServerModel, build_encoder, load_minilm
from training.scheduler import LyapunovScheduler, SchedulerConfig
from training.tasks import channel_prediction_task, sensor_task

from .beams import BeamBuyer
from .buyers import OperatorBuyer, SpectrumBuyer, UplinkBuyer
from .demand import Distribution
from .roles import (
    UNIT_WEI,
    Agent,
    EdgeDevice,
    EdgeServer,
    SatelliteOperator,
    TerrestrialOperator,
)
from .scenario import Scenario

__all__ = ["Population", "build_job", "build_population", "join_all"]

UPLOAD_BITS = 8e6  # what the scheduler assumes a device uploads per round
COMPUTE_FLOPS = 2e9  # and computes: one round's local work on a device


@dataclass
class Population:
    """The sellers of a run, in the order they were built (and join)."""

    agents: list[Agent]

    @property
    def devices(self) -> dict[int, EdgeDevice]:
        """The edge devices by their data partition."""
        return {a.index: a for a in self.agents if isinstance(a, EdgeDevice)}

    @property
    def satellites(self) -> list[SatelliteOperator]:
        return [a for a in self.agents if isinstance(a, SatelliteOperator)]

    @property
    def buyers(self) -> list[SpectrumBuyer]:
        """The spectrum buyers that are not a training job (uplink, operators)."""
        return [a for a in self.agents if isinstance(a, SpectrumBuyer)]


def _reserve(
    named: Distribution | None, rng: np.random.Generator, low: float, high: float, units: int = 1
) -> int:
    """A seller's reserve: from the scenario's distribution when it names one, else
    ``units`` x UNIT_WEI x uniform(low, high), the draw scenarios always had."""
    if named is not None:
        return named.draw(rng)
    return int(units * UNIT_WEI * rng.uniform(low, high))


def build_population(scenario: Scenario, rng: np.random.Generator) -> Population:
    """The sellers of ``scenario``, then its spectrum buyers; reserve prices are drawn
    from ``rng`` (buyers value channels per epoch: :class:`agents.buyers.DemandSide`)."""
    sc, seed = scenario, scenario.seed
    regions = [r.region_id for r in sc.regions]
    channels = {r.region_id: r.num_channels for r in sc.regions}
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
    terrestrial_in = {
        r: [i for i in range(p.terrestrial_operators) if regions[i % len(regions)] == r]
        for r in regions
    }
    for i in range(p.terrestrial_operators):
        r = regions[i % len(regions)]
        share = terrestrial_in[r]
        width = max(1, channels[r] // 2 // len(share))  # lower half of the band
        lo = share.index(i) * width
        make(
            TerrestrialOperator,
            f"terrestrial-{i}",
            Role.TERRESTRIAL,
            (r,),
            lo=lo,
            hi=min(channels[r], lo + width),
            reserve_wei=_reserve(sc.reserves.terrestrial_operators, rng, 0.5, 1.5),
        )
    narrowest = min(channels[r] for r in regions)
    for i in range(p.satellite_operators):
        make(
            SatelliteOperator,
            f"satellite-{i}",
            Role.SATELLITE,
            tuple(regions),
            pass_epochs=2,
            lo=narrowest // 2,  # the upper half of every band it passes over
            hi=narrowest,
            reserve_wei=_reserve(sc.reserves.satellite_operators, rng, 0.3, 1),
        )
    for i in range(p.edge_servers):
        make(
            EdgeServer,
            f"edge-server-{i}",
            Role.EDGE_SERVER,
            (regions[i % len(regions)],),
            reserve_wei=_reserve(sc.reserves.edge_servers, rng, 0.5, 1.5, units=2),
        )
    for i in range(p.edge_devices):
        make(
            EdgeDevice,
            f"device-{i}",
            Role.EDGE_DEVICE,
            (regions[i % len(regions)],),
            index=i,
            reserve_wei=_reserve(sc.reserves.edge_devices, rng, 0.5, 2),
        )
    demand = sc.demand
    for i in range(p.uplink_buyers):
        assert demand is not None, "a scenario with buyers has [demand]"
        make(
            UplinkBuyer,
            f"uplink-{i}",
            Role.EDGE_DEVICE,
            (regions[i % len(regions)],),
            **({"value": demand.uplink_value} if demand.uplink_value else {}),
        )
    for i in range(p.operator_buyers):
        assert demand is not None, "a scenario with buyers has [demand]"
        make(
            OperatorBuyer,
            f"operator-buyer-{i}",
            Role.TERRESTRIAL,
            (regions[i % len(regions)],),
            band=(narrowest // 2, narrowest),  # what the satellites offer
            **({"value": demand.operator_value} if demand.operator_value else {}),
        )
    if sc.cross_region is not None:  # last: every other agent keeps its generator
        make(BeamBuyer, "beam-buyer-0", Role.TERRESTRIAL, sc.cross_region.regions)
    return Population(agents)


def build_job(scenario: Scenario) -> ScheduledJob:
    """The split-federated-LoRA job of ``scenario``: task, encoder, trainer, the devices'
    channels and the Lyapunov scheduler, all seeded from the scenario."""
    sc = scenario
    n, per_device = sc.participants.edge_devices, sc.job.examples_per_device
    if sc.job.task == "sensor":
        examples = per_device * n or max(2000, 60 * n)
        task = sensor_task(examples=examples, test=500, seed=sc.seed)
    else:
        examples = per_device * n or max(1500, 50 * n)
        task = channel_prediction_task(examples=examples, test=400, seed=sc.seed)
    torch.manual_seed(sc.seed)
    encoder = (
        load_minilm() if sc.job.model == "minilm" else build_encoder(EncoderConfig(), seed=sc.seed)
    )
    lora = LoraSettings(rank=sc.job.lora_rank, alpha=2 * sc.job.lora_rank)
    trainer = FederatedTrainer(
        task,
        ServerModel(encoder, lora),
        FederatedConfig(
            devices=n,
            devices_per_round=min(n, sc.job.devices_per_round),
            rounds=sc.job.rounds,
            seed=sc.seed,
            clip_norm=sc.job.clip_norm,
            privacy=PrivacyConfig(
                target_epsilon=sc.job.target_epsilon,
                target_noise_multiplier=sc.job.target_noise_multiplier,
                gradient_clip_norm=sc.job.gradient_clip_norm,
                over_the_air_clip_norm=sc.job.over_the_air_clip_norm,
            ),
            threads=sc.job.threads,
        ),
    )
    ch_rng = np.random.default_rng([sc.seed, 7])
    profiles = [
        DeviceProfile(
            distance_m=float(ch_rng.uniform(30, 250)),
            flops_per_s=float(ch_rng.uniform(5e9, 3e10)),
            examples=trainer.examples[i],
        )
        for i in range(n)
    ]
    scheduler = LyapunovScheduler(
        SchedulerConfig(
            v=sc.job.v,
            delay_budget_s=sc.job.delay_budget_s,
            upload_bits=UPLOAD_BITS,
            compute_flops=COMPUTE_FLOPS,
            max_devices=min(n, sc.job.devices_per_round),
            max_round_delay_s=sc.job.max_round_delay_s,
        )
    )
    return ScheduledJob(
        trainer, scheduler, ChannelState(ChannelConfig(), profiles, ch_rng), profiles
    )


async def join_all(
    ledger: TieredLedger, population: Population, buyers: Mapping[int, Sequence[Joiner]]
) -> int:
    """Every agent signs its registration in each of its regions, and the ledger's
    operator joins each region's agents (and ``buyers``: region -> the coordinators'
    entries) in a few ``join`` batches; returns the transactions sent."""
    joiners: dict[int, list[Joiner]] = {r: [] for r in ledger.regions}
    for agent in population.agents:
        for r in agent.regions:
            rt = ledger.regions[r]
            joiners[r].append(agent.joiner(r, Trader(agent.key, rt.market, rt.client)))
    for r, entries in buyers.items():
        joiners[r].extend(entries)
    return sum([await ledger.regions[r].join(batch) for r, batch in joiners.items()])
