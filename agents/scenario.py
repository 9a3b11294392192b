"""Scenario files (TOML), validated on load into frozen dataclasses.

An invalid file fails with one message naming the file, the field and what was
expected, e.g. ``quickstart.toml: job.rounds: expected an integer >= 1, got 0``.
See ``examples/quickstart.toml`` for every field with a comment.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.config import RegionConfig
from ledger.errors import ConfigError
from ledger.mechanisms import mechanism_names

from .errors import ScenarioError

__all__ = ["Failures", "JobSpec", "Participants", "Scenario", "load_scenario"]

MIN_BOND_WEI = 10**15  # a seller's bond must cover at least this

STRATEGIES = ("truthful", "shaded", "adaptive")
TASKS = ("sensor", "channel")
MODELS = ("small", "minilm")


@dataclass(frozen=True)
class Participants:
    satellite_operators: int
    terrestrial_operators: int
    edge_servers: int
    edge_devices: int
    coordinators: int

    @property
    def total(self) -> int:
        return (
            self.satellite_operators
            + self.terrestrial_operators
            + self.edge_servers
            + self.edge_devices
            + self.coordinators
        )


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


class _Reader:
    """Reads one table of the file, naming the dotted field in every error."""

    def __init__(self, path: Path, table: dict[str, Any], prefix: str = "") -> None:
        self.path, self.table, self.prefix = path, table, prefix

    def fail(self, key: str, expected: str, got: Any) -> ScenarioError:
        return ScenarioError(
            f"{self.path.name}: {self.prefix}{key}: expected {expected}, got {got!r}"
        )

    def sub(self, key: str, required: bool = True) -> _Reader:
        value = self.table.get(key, None if required else {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return _Reader(self.path, value, f"{self.prefix}{key}.")

    def int(
        self, key: str, default: int | None = None, lo: int | None = None, hi: int | None = None
    ) -> int:
        value = self.table.get(key, default)
        rule = (
            "an integer"
            + (f" >= {lo}" if lo is not None else "")
            + (f" <= {hi}" if hi is not None else "")
        )
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            raise self.fail(key, rule, value)
        return value

    def float(
        self,
        key: str,
        default: float | None = None,
        lo: float | None = None,
        hi: float | None = None,
    ) -> float:
        value = self.table.get(key, default)
        rule = (
            "a number"
            + (f" >= {lo}" if lo is not None else "")
            + (f" <= {hi}" if hi is not None else "")
        )
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            raise self.fail(key, rule, value)
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.table.get(key, default)
        if value not in choices:
            raise self.fail(key, "one of " + ", ".join(choices), value)
        return str(value)

    def str(self, key: str, default: str = "") -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str):
            raise self.fail(key, "a string", value)
        return value


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path.name}: not valid TOML: {exc}") from exc
    top = _Reader(path, data)
    regions_raw = data.get("regions")
    if not isinstance(regions_raw, list) or not regions_raw:
        raise top.fail("regions", "a non-empty array of [[regions]] tables", regions_raw)
    mechanisms = mechanism_names()
    length = top.int("epoch_length_s", 3600, 60)
    regions = []
    for i, raw in enumerate(regions_raw):
        if not isinstance(raw, dict):
            raise top.fail(f"regions[{i}]", "a table", raw)
        r = _Reader(path, raw, f"regions[{i}].")
        channels = r.int("channels", 16, 1, 256)
        committee = r.int("committee", 3, 1, 32)
        protected = raw.get("protected_channels", [])
        if not isinstance(protected, list) or not all(
            isinstance(c, int) and 0 <= c < channels for c in protected
        ):
            raise r.fail(
                "protected_channels", f"a list of channels in 0..{channels - 1}", protected
            )
        try:
            regions.append(
                RegionConfig(
                    region_id=r.int("id", None, 0),
                    name=r.str("name", f"region-{i}"),
                    mechanism=r.choice("mechanism", mechanisms, "proportional_fair"),
                    committee_size=committee,
                    threshold=r.int("threshold", min(2, committee), 1, committee),
                    num_channels=channels,
                    channel_width_hz=r.int("channel_width_hz", 10_000_000, 1),
                    spectrum_low_hz=r.int("spectrum_low_hz", 3_550_000_000, 0),
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
        satellite_operators=p.int("satellite_operators", 0, 0),
        terrestrial_operators=p.int("terrestrial_operators", 1, 1),
        edge_servers=p.int("edge_servers", 1, 1),
        edge_devices=p.int("edge_devices", 10, 1),
        coordinators=p.int("coordinators", 1, 1, 1),
    )
    s = top.sub("strategies", required=False)
    j = top.sub("job")
    job = JobSpec(
        task=j.choice("task", TASKS, "sensor"),
        model=j.choice("model", MODELS, "small"),
        rounds=j.int("rounds", None, 1),
        devices_per_round=j.int("devices_per_round", None, 1, participants.edge_devices),
        delay_budget_s=j.float("delay_budget_s", 2.0, 1e-6),
        v=j.float("v", 5.0, 0.0),
        budget_eth=j.float("budget_eth", 10.0, 1e-9, 1000.0),
        lora_rank=j.int("lora_rank", 8, 1),
        clip_norm=j.float("clip_norm", 1.0, 0.0),
    )
    f = top.sub("failures", required=False)
    outage = None
    if "region_outage" in f.table:
        o = f.sub("region_outage")
        outage = Outage(
            o.int("region", None), o.int("from_epoch", None, 0), o.int("to_epoch", None, 0)
        )
        if outage.region not in {r.region_id for r in regions}:
            raise o.fail("region", "the id of a region above", outage.region)
    crashes_raw = f.table.get("agent_crashes", [])
    if not isinstance(crashes_raw, list):
        raise f.fail("agent_crashes", "an array of {agent, epoch} tables", crashes_raw)
    crashes = []
    for i, c in enumerate(crashes_raw):
        if not isinstance(c, dict):
            raise f.fail(f"agent_crashes[{i}]", "a table", c)
        cr = _Reader(path, c, f"failures.agent_crashes[{i}].")
        crashes.append(Crash(cr.str("agent"), cr.int("epoch", None, 0)))
    epochs = top.int("epochs", None, 1)
    if job.rounds > epochs:
        raise j.fail("rounds", f"at most epochs ({epochs})", job.rounds)
    return Scenario(
        path=path,
        seed=top.int("seed", 0, 0),
        epochs=epochs,
        epoch_length_s=length,
        genesis_timestamp=top.int("genesis_timestamp", 1_893_456_000, 0),
        checkpoint_every=top.int("checkpoint_every", 0, 0),
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
    )
