"""Scenario files (TOML), validated on load into frozen dataclasses.

An invalid file fails with one message naming the file, the field and what was
expected, e.g. ``quickstart.toml: job.rounds: expected an integer >= 1, got 0``.
Every number has an upper bound that one of this project's machines (2 cores,
24 GiB) can run (the ``MAX_*`` below, each with its reason), NaN and infinities
are refused, and so is a key no table has (the nearest known one is suggested).
See ``examples/quickstart.toml`` for every field with a comment.

Importing this module loads no chain library and no torch (``ledger.config`` and
``ledger.mechanisms`` are pure), so ``specledger simulate`` refuses a bad file in
about a second, before anything is deployed or written.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from ledger.config import RegionConfig
from ledger.errors import ConfigError
from ledger.mechanisms import mechanism_names

from ._toml import MAX_TOML_BYTES, read_toml
from .cross_region import CROSS_REGION_KEYS, CrossRegionSpec, read_cross_region
from .demand import DEMAND_KEYS, RESERVE_KEYS, DemandSpec, Reserves, read_demand, read_reserves
from .errors import ScenarioError

__all__ = [
    "Failures",
    "JobSpec",
    "Participants",
    "Scenario",
    "load_scenario",
    "scenario_from_dict",
]

MIN_BOND_WEI = 10**15  # a seller's bond must cover at least this

STRATEGIES = ("truthful", "shaded", "adaptive")
TASKS = ("sensor", "channel")
MODELS = ("small", "minilm")

# -- upper bounds: what one machine of this project (2 cores, 24 GiB) runs ----------------------
MAX_FILE_BYTES = MAX_TOML_BYTES  # a scenario is a few KiB; a MiB is no scenario
MAX_NAME_CHARS = 64  # region and agent names: labels in files and reports
MAX_INT = 2**63 - 1  # TOML's integers are 64-bit (seeds)
# regions: each is a chain of its own (py-evm in this process, or an anvil)
MAX_REGIONS = 16  # RootLedger.vy's MAX_REGIONS: a checkpoint covers at most 16
MAX_REGION_ID = 65_535  # an id names its chain and files (region-<id>)
MAX_CHANNELS = 256  # the channel mask is one uint256 (RegionConfig refuses more too)
MAX_COMMITTEE = 32  # RegionMarket.vy's MAX_COMMITTEE signers
MAX_HZ = 300 * 10**9  # radio ends at 300 GHz: the band's start and a channel's width
# participants: each agent holds a key, an rng and its orders, and joins every region it trades
# in with a transaction: 10,000 agents (examples/large.toml's target) with room to spare
MAX_AGENTS = 12_000  # all kinds together
MAX_EDGE_DEVICES = 10_000  # each also gets a data partition and a channel profile
MAX_OPERATORS = 1_000  # terrestrial operators; and edge servers
MAX_SATELLITE_OPERATORS = 100  # each offers in every region, every epoch
MAX_COORDINATORS = 8  # each trains its own job for real every round, on 2 cores
MAX_BUYERS = 2_000  # spectrum buyers (uplink, operators): each signs a bid per waiting order
# time: every epoch settles every region on chain (the quickstart: under 2 s an epoch here)
MAX_EPOCHS = 1_000  # about half an hour at the quickstart's size; and rounds <= epochs
MAX_EPOCH_LENGTH_S = 7 * 86_400  # a slot of a week at most
MAX_TIMESTAMP = 2**32 - 1  # genesis: a 32-bit Unix time (2106); block times stay far in uint64
# the job: a round trains every scheduled device for real, on 2 cores
MAX_DEVICES_PER_ROUND = 1_000  # and at most the edge devices there are
MAX_LORA_RANK = {"small": 64, "minilm": 384}  # the encoder's hidden size: no rank above it helps
DEFAULT_DELAY_BUDGET_S, DEFAULT_MECHANISM = 2.0, "proportional_fair"  # when none is given
MAX_DELAY_BUDGET_S = 3_600.0  # the scheduler's average delay per round: an hour is no budget
MAX_ROUND_DELAY_S = 86_400.0  # the scheduler's cap on one round: a day is no cap
MAX_V = 1e6  # the Lyapunov weight: beyond it the delay queue no longer counts
MAX_BUDGET_ETH = 1_000.0  # the coordinator's deposit, from a funded development account
MAX_CLIP_NORM = 1e6  # activation clipping: beyond it nothing is clipped
MAX_EPSILON = 1e6  # a privacy target (epsilon or noise multiplier): beyond it, no privacy
MAX_EXAMPLES = 200_000  # the job's examples over all devices: ~150 MB of sensor windows
MAX_THREADS = 256  # intra-op threads: more than a machine has cores only contend

# Every key each table may hold (a path names a table; "[]" an array of tables).
KEYS: dict[str, tuple[str, ...]] = {
    "": (
        "seed",
        "epochs",
        "epoch_length_s",
        "genesis_timestamp",
        "checkpoint_every",
        "regions",
        "participants",
        "strategies",
        "job",
        "failures",
        "demand",
        "reserves",
        "cross_region",
    ),
    "regions[]": (
        "id",
        "name",
        "mechanism",
        "channels",
        "channel_width_hz",
        "spectrum_low_hz",
        "protected_channels",
        "committee",
        "threshold",
    ),
    "participants": (
        "satellite_operators",
        "terrestrial_operators",
        "edge_servers",
        "edge_devices",
        "coordinators",
        "uplink_buyers",
        "operator_buyers",
    ),
    "strategies": ("coordinator", "shade"),
    "job": (
        "task",
        "model",
        "rounds",
        "devices_per_round",
        "delay_budget_s",
        "v",
        "budget_eth",
        "lora_rank",
        "clip_norm",
        "threads",
        "target_epsilon",
        "target_noise_multiplier",
        "gradient_clip_norm",
        "over_the_air_clip_norm",
        "max_round_delay_s",
        "examples_per_device",
    ),
    "failures": ("device_dropout", "region_outage", "agent_crashes"),
    "demand": DEMAND_KEYS,
    "reserves": RESERVE_KEYS,
    "cross_region": CROSS_REGION_KEYS,
    "failures.region_outage": ("region", "from_epoch", "to_epoch"),
    "failures.agent_crashes[]": ("agent", "epoch"),
}


@dataclass(frozen=True)
class Participants:
    satellite_operators: int
    terrestrial_operators: int
    edge_servers: int
    edge_devices: int
    coordinators: int
    uplink_buyers: int = 0  # edge devices' own uplink traffic: spectrum buyers
    operator_buyers: int = 0  # terrestrial operators buying satellite spectrum

    @property
    def total(self) -> int:
        """Every agent of every kind (each field counts one kind)."""
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class JobSpec:
    task: str
    model: str
    rounds: int
    devices_per_round: int
    delay_budget_s: float
    v: float
    budget_eth: float
    lora_rank: int
    clip_norm: float
    threads: int | Literal["auto"] = "auto"  # one thread for a small model (training.threads)
    # privacy (training.privacy; 0 turns each off): power control towards a target epsilon
    # or noise multiplier; pooled gradients and device modules sent noisy when clipped
    target_epsilon: float = 0.0
    target_noise_multiplier: float = 0.0
    gradient_clip_norm: float = 0.0
    over_the_air_clip_norm: float = 0.0
    # the scheduler plans no round above this; None: 4 x delay_budget_s (training.scheduler)
    max_round_delay_s: float | None = None
    examples_per_device: int = 0  # each device's data; 0: the task's default size over n


@dataclass(frozen=True)
class Outage:
    region: int
    from_epoch: int
    to_epoch: int


@dataclass(frozen=True)
class Crash:
    agent: str
    epoch: int


@dataclass(frozen=True)
class Failures:
    device_dropout: float = 0.0
    region_outage: Outage | None = None
    agent_crashes: tuple[Crash, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """A whole experiment: regions, participants, strategies, job, failures, time, seed."""

    path: Path
    seed: int
    epochs: int
    epoch_length_s: int
    genesis_timestamp: int
    checkpoint_every: int
    regions: tuple[RegionConfig, ...]  # what the ledger deploys, as it deploys it
    participants: Participants
    coordinator_strategy: str
    shade: float
    job: JobSpec
    failures: Failures = field(default_factory=Failures)
    demand: DemandSpec | None = None  # None: the coordinators are the only buyers
    reserves: Reserves = field(default_factory=Reserves)
    cross_region: CrossRegionSpec | None = None  # beam leases over several regions


def _cut(text: str) -> str:
    """``text``, cut short: a message stays one readable line."""
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _shown(value: Any) -> str:
    return _cut(repr(value))


def _rule(kind: str, value: Any, lo: float, hi: float, why: str = "") -> str:
    """What a number must be: the bound it broke, or both (TOML's own limit left out)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    low = f" >= {lo}" if not number or value < lo else ""
    high = f" <= {hi}" if hi != MAX_INT and (not number or value > hi) else ""
    return f"{kind}{low}{high}" + (f" ({why})" if why and high else "")


def _table_name(schema: str) -> str:
    """How a person writes the table at ``schema``: ``[job]``, ``[[regions]]``."""
    if not schema:
        return "the top level"
    return f"[[{schema[:-2]}]]" if schema.endswith("[]") else f"[{schema}]"


class _Reader:
    """Reads one table of the file, naming the dotted field in every error. ``schema``
    is the table's entry in :data:`KEYS`; any other key in it is refused on creation."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str, schema: str) -> None:
        self.path, self.table, self.prefix, self.schema = path, table, prefix, schema
        for key in table:
            if key not in KEYS[schema]:
                raise self.unknown(key)

    def fail(self, key: str, expected: str, got: Any) -> ScenarioError:
        return ScenarioError(
            f"{self.path.name}: {self.prefix}{key}: expected {expected}, got {_shown(got)}"
        )

    def unknown(self, key: str) -> ScenarioError:
        """An unknown key, with the nearest known one: the same key in another table, else
        a near one in this table, else a near one in another."""
        known = KEYS[self.schema]
        elsewhere = {k: t for t, keys in KEYS.items() if t != self.schema for k in keys}
        hint = ""
        if key in elsewhere:
            hint = f" (did you mean {key!r} in {_table_name(elsewhere[key])}?)"
        elif near := difflib.get_close_matches(key, known, n=1):
            hint = f" (did you mean {near[0]!r}?)"
        elif near := difflib.get_close_matches(key, list(elsewhere), n=1):
            hint = f" (did you mean {near[0]!r} in {_table_name(elsewhere[near[0]])}?)"
        return ScenarioError(
            f"{self.path.name}: {self.prefix}{_cut(key)}: unknown key{hint}; "
            f"expected one of {', '.join(known)}"
        )

    def sub(self, key: str, required: bool = True) -> _Reader:
        value = self.table.get(key, None if required else {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        schema = f"{self.schema}.{key}" if self.schema else key
        return _Reader(self.path, value, f"{self.prefix}{key}.", schema)

    def tables(self, key: str, what: str, limit: int, required: bool = False) -> list[_Reader]:
        """An array of tables (``[[key]]``), at most ``limit`` of them, each a reader."""
        value = self.table.get(key, None if required else [])
        if not isinstance(value, list) or len(value) > limit or (required and not value):
            expected = f"{'a non-empty' if required else 'an'} array of {what}, at most {limit}"
            raise self.fail(key, expected, value)
        schema = f"{self.schema}.{key}[]" if self.schema else f"{key}[]"
        readers = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail(f"{key}[{i}]", "a table", item)
            readers.append(_Reader(self.path, item, f"{self.prefix}{key}[{i}].", schema))
        return readers

    def int(self, key: str, default: int | None, lo: int, hi: int, why: str = "") -> int:
        value = self.table.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self.fail(key, _rule("an integer", value, lo, hi, why), value)
        return value

    def float(self, key: str, default: float, lo: float, hi: float) -> float:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, _rule("a number", value, lo, hi), value)
        if not math.isfinite(value):
            raise self.fail(key, _rule("a finite number", None, lo, hi), value)
        if not lo <= value <= hi:
            raise self.fail(key, _rule("a number", value, lo, hi), value)
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices), value)
        return value

    def str(self, key: str, default: str = "") -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or len(value) > MAX_NAME_CHARS:
            raise self.fail(key, f"a string of at most {MAX_NAME_CHARS} characters", value)
        return value


def _threads(j: _Reader) -> int | Literal["auto"]:
    """``[job] threads``: "auto" or an integer in 1..MAX_THREADS."""
    value = j.table.get("threads", "auto")
    number = isinstance(value, int) and not isinstance(value, bool)
    if value != "auto" and not (number and 1 <= value <= MAX_THREADS):
        why = "more threads than cores only contend"
        raise j.fail(
            "threads", '"auto" or ' + _rule("an integer", value, 1, MAX_THREADS, why), value
        )
    return value  # type: ignore[no-any-return]


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    return scenario_from_dict(read_toml(path), path)


def scenario_from_dict(data: dict[str, Any], path: Path | str) -> Scenario:
    """Validate a scenario's parsed TOML, named ``path`` in its errors and its result, so
    that an experiment checks every grid point's overrides before any run is written."""
    path = Path(path)
    top = _Reader(path, data, "", "")
    mechanisms = mechanism_names()
    length = top.int("epoch_length_s", 3600, 60, MAX_EPOCH_LENGTH_S)
    regions = []
    for i, r in enumerate(top.tables("regions", "[[regions]] tables", MAX_REGIONS, True)):
        channels = r.int("channels", 16, 1, MAX_CHANNELS)
        committee = r.int("committee", 3, 1, MAX_COMMITTEE)
        protected = r.table.get("protected_channels", [])
        if not isinstance(protected, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c < channels for c in protected
        ):
            raise r.fail(
                "protected_channels", f"a list of channels in 0..{channels - 1}", protected
            )
        try:
            regions.append(
                RegionConfig(
                    region_id=r.int("id", None, 0, MAX_REGION_ID),
                    name=r.str("name", f"region-{i}"),
                    mechanism=r.choice("mechanism", mechanisms, DEFAULT_MECHANISM),
                    committee_size=committee,
                    threshold=r.int("threshold", min(2, committee), 1, committee),
                    num_channels=channels,
                    channel_width_hz=r.int("channel_width_hz", 10_000_000, 1, MAX_HZ),
                    spectrum_low_hz=r.int("spectrum_low_hz", 3_550_000_000, 0, MAX_HZ),
                    protected_channels=tuple(protected),
                    epoch_length_s=length,
                    # a working device proves itself twice an epoch; an ended lease
                    # can be claimed for one more epoch before it expires
                    heartbeat_interval_s=length // 2,
                    claim_window_s=length,
                    min_bond_wei=MIN_BOND_WEI,
                )
            )
        except ConfigError as exc:  # every field was checked above; say it as ours anyway
            raise ScenarioError(f"{path.name}: regions[{i}]: {exc}") from exc
    if len({r.region_id for r in regions}) != len(regions):
        raise top.fail("regions", "distinct region ids", [r.region_id for r in regions])
    p = top.sub("participants")
    participants = Participants(
        satellite_operators=p.int("satellite_operators", 0, 0, MAX_SATELLITE_OPERATORS),
        terrestrial_operators=p.int("terrestrial_operators", 1, 1, MAX_OPERATORS),
        edge_servers=p.int("edge_servers", 1, 1, MAX_OPERATORS),
        edge_devices=p.int("edge_devices", 10, 1, MAX_EDGE_DEVICES),
        coordinators=p.int("coordinators", 1, 1, MAX_COORDINATORS, "each trains a job every round"),
        uplink_buyers=p.int("uplink_buyers", 0, 0, MAX_BUYERS),
        operator_buyers=p.int("operator_buyers", 0, 0, MAX_BUYERS),
    )
    if participants.total > MAX_AGENTS:
        raise ScenarioError(
            f"{path.name}: participants: expected at most {MAX_AGENTS} agents in all, "
            f"got {participants.total}"
        )
    s = top.sub("strategies", required=False)
    j = top.sub("job")
    model = j.choice("model", MODELS, "small")
    devices = participants.edge_devices
    job = JobSpec(
        task=j.choice("task", TASKS, "sensor"),
        model=model,
        rounds=j.int("rounds", None, 1, MAX_EPOCHS),
        devices_per_round=j.int(
            "devices_per_round",
            None,
            1,
            min(devices, MAX_DEVICES_PER_ROUND),
            "the edge devices" if devices <= MAX_DEVICES_PER_ROUND else "what a round trains here",
        ),
        delay_budget_s=j.float("delay_budget_s", DEFAULT_DELAY_BUDGET_S, 1e-6, MAX_DELAY_BUDGET_S),
        v=j.float("v", 5.0, 0.0, MAX_V),
        budget_eth=j.float("budget_eth", 10.0, 1e-9, MAX_BUDGET_ETH),
        lora_rank=j.int(
            "lora_rank", 8, 1, MAX_LORA_RANK[model], f"the {model} encoder's hidden size"
        ),
        clip_norm=j.float("clip_norm", 1.0, 0.0, MAX_CLIP_NORM),
        threads=_threads(j),
        target_epsilon=j.float("target_epsilon", 0.0, 0.0, MAX_EPSILON),
        target_noise_multiplier=j.float("target_noise_multiplier", 0.0, 0.0, MAX_EPSILON),
        gradient_clip_norm=j.float("gradient_clip_norm", 0.0, 0.0, MAX_CLIP_NORM),
        over_the_air_clip_norm=j.float("over_the_air_clip_norm", 0.0, 0.0, MAX_CLIP_NORM),
        max_round_delay_s=(
            j.float("max_round_delay_s", 0.0, 1e-6, MAX_ROUND_DELAY_S)
            if "max_round_delay_s" in j.table
            else None
        ),
        examples_per_device=j.int("examples_per_device", 0, 0, MAX_EXAMPLES // devices),
    )
    if job.max_round_delay_s is not None and job.max_round_delay_s < job.delay_budget_s:
        raise j.fail(
            "max_round_delay_s",
            f">= delay_budget_s ({job.delay_budget_s}): a cap below the average budget "
            "leaves the budget moot (lower delay_budget_s instead, or leave the cap out "
            "for 4 x delay_budget_s)",
            job.max_round_delay_s,
        )
    if job.target_epsilon > 0 and job.target_noise_multiplier > 0:
        raise j.fail(
            "target_noise_multiplier",
            "0 when target_epsilon is set (one target)",
            job.target_noise_multiplier,
        )
    if (job.target_epsilon > 0 or job.target_noise_multiplier > 0) and job.clip_norm == 0:
        raise j.fail("clip_norm", "> 0 for a privacy target (it bounds the sensitivity)", 0.0)
    epochs = top.int("epochs", None, 1, MAX_EPOCHS)
    if job.rounds > epochs:
        raise j.fail("rounds", f"at most epochs ({epochs})", job.rounds)
    f = top.sub("failures", required=False)
    outage = None
    if "region_outage" in f.table:
        o = f.sub("region_outage")
        region = o.int("region", None, 0, MAX_REGION_ID)
        if region not in {r.region_id for r in regions}:
            raise o.fail("region", "the id of a region above", region)
        start = o.int("from_epoch", None, 0, MAX_EPOCHS)
        end = o.int("to_epoch", None, 0, MAX_EPOCHS)
        if end < start:
            raise o.fail("to_epoch", f"at least from_epoch ({start})", end)
        outage = Outage(region, start, end)
    crashes = [
        Crash(c.str("agent"), c.int("epoch", None, 0, MAX_EPOCHS))
        for c in f.tables("agent_crashes", "{agent, epoch} tables", MAX_AGENTS)
    ]
    buyers = participants.uplink_buyers + participants.operator_buyers
    demand = read_demand(top, buyers, regions) if "demand" in top.table or buyers else None
    reserves = read_reserves(top.sub("reserves", required=False))
    return Scenario(
        path=path,
        seed=top.int("seed", 0, 0, MAX_INT),
        epochs=epochs,
        epoch_length_s=length,
        genesis_timestamp=top.int("genesis_timestamp", 1_893_456_000, 0, MAX_TIMESTAMP),
        checkpoint_every=top.int("checkpoint_every", 0, 0, MAX_EPOCHS),
        regions=tuple(regions),
        participants=participants,
        coordinator_strategy=s.choice("coordinator", STRATEGIES, "adaptive"),
        shade=s.float("shade", 0.2, 0.0, 0.99),
        job=job,
        failures=Failures(
            device_dropout=f.float("device_dropout", 0.0, 0.0, 1.0),
            region_outage=outage,
            agent_crashes=tuple(crashes),
        ),
        demand=demand,
        reserves=reserves,
        cross_region=read_cross_region(top, regions, participants.satellite_operators),
    )
