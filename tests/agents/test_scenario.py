"""Scenario files: the examples load; invalid files name the file, the field, the rule,
in one line, before anything heavy is imported (no web3, py-evm or torch)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agents import scenario as scenario_module
from agents.errors import ScenarioError
from agents.scenario import load_scenario
from agents.strategies import Adaptive, Shaded, Truthful, make_strategy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
POOLS = {"edge_pool.toml"}  # `specledger plan`'s pool files, not scenarios
SCENARIOS = sorted(p.name for p in EXAMPLES.glob("*.toml") if p.name not in POOLS)

GOOD = """
seed = 1
epochs = 3
[[regions]]
id = 1
mechanism = "second_price"
[participants]
edge_devices = 4
[job]
rounds = 2
devices_per_round = 2
"""


@pytest.mark.parametrize("name", SCENARIOS)
def test_examples_load(name: str):
    sc = load_scenario(EXAMPLES / name)
    assert sc.regions and sc.job.rounds <= sc.epochs


def test_scale_example_has_at_least_1000_agents():
    assert load_scenario(EXAMPLES / "scale.toml").participants.total >= 1000


def test_large_example_has_10000_agents():
    assert load_scenario(EXAMPLES / "large.toml").participants.total == 10_000


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("rounds = 2", "rounds = 0"), "job.rounds: expected an integer >= 1, got 0"),
        (("rounds = 2", "rounds = 9"), "job.rounds: expected at most epochs (3), got 9"),
        (
            ('mechanism = "second_price"', 'mechanism = "vcg"'),
            "regions[0].mechanism: expected one of second_price, double_auction, "
            "proportional_fair, bundle, got 'vcg'",
        ),
        (
            ("devices_per_round = 2", "devices_per_round = 5"),
            "job.devices_per_round: expected an integer <= 4 (the edge devices), got 5",
        ),
        (("seed = 1", 'seed = "one"'), "seed: expected an integer >= 0, got 'one'"),
        (("[participants]\nedge_devices = 4", ""), "participants: expected a table, got None"),
        (
            ("id = 1", "id = 1\nprotected_channels = [99]"),
            "regions[0].protected_channels: expected a list of channels in 0..15, got [99]",
        ),
        (
            (
                "epochs = 3",
                "epochs = 3\n[failures]\nregion_outage = { region = 9, from_epoch = 1,"
                " to_epoch = 2 }",
            ),
            "failures.region_outage.region: expected the id of a region above",
        ),
        (("[job]", "[job]\nmodel = 'gpt'"), "job.model: expected one of small, minilm, got 'gpt'"),
        # NaN and infinities
        (
            ("[job]", "[job]\nbudget_eth = nan"),
            "job.budget_eth: expected a finite number >= 1e-09 <= 1000.0, got nan",
        ),
        (
            ("[job]", "[job]\nv = inf"),
            "job.v: expected a finite number >= 0.0 <= 1000000.0, got inf",
        ),
        (
            ("[job]", "[job]\ndelay_budget_s = -inf"),
            "job.delay_budget_s: expected a finite number >= 1e-06 <= 3600.0, got -inf",
        ),
        # upper bounds one machine can run
        (
            ("[job]", "[job]\nlora_rank = 1000000000"),
            "job.lora_rank: expected an integer <= 64 (the small encoder's hidden size), "
            "got 1000000000",
        ),
        (
            ("[job]", "[job]\nmodel = 'minilm'\nlora_rank = 385"),
            "job.lora_rank: expected an integer <= 384 (the minilm encoder's hidden size)",
        ),
        (
            ("edge_devices = 4", f"edge_devices = {10**30}"),
            f"participants.edge_devices: expected an integer <= 10000, got {10**30}",
        ),
        (
            (
                "edge_devices = 4",
                "edge_devices = 10000\nedge_servers = 1000\nterrestrial_operators = 1000\n"
                "satellite_operators = 100",
            ),
            "participants: expected at most 12000 agents in all, got 12101",
        ),
        (("epochs = 3", "epochs = 100000"), "epochs: expected an integer <= 1000, got 100000"),
        (
            ("[[regions]]\nid = 1", "\n".join(f"[[regions]]\nid = {i}" for i in range(17))),
            "regions: expected a non-empty array of [[regions]] tables, at most 16, got [",
        ),
        (("id = 1", "id = 1\nchannels = 512"), "regions[0].channels: expected an integer <= 256"),
        (
            ("id = 1", f"id = 1\nname = '{'n' * 100}'"),
            "regions[0].name: expected a string of at most 64 characters, got 'nnnn",
        ),
        (
            (
                "devices_per_round = 2",
                "devices_per_round = 2\n[failures]\n"
                "region_outage = { region = 1, from_epoch = 2, to_epoch = 1 }",
            ),
            "failures.region_outage.to_epoch: expected at least from_epoch (2), got 1",
        ),
        (("seed = 1", "seed = true"), "seed: expected an integer >= 0, got True"),
        # unknown keys, at every level, with the nearest known one
        (
            ("seed = 1", "seed = 1\nroundz = 3"),
            "roundz: unknown key (did you mean 'rounds' in [job]?); expected one of seed, epochs",
        ),
        (
            ("seed = 1", "seed = 1\nrounds = 3"),
            "rounds: unknown key (did you mean 'rounds' in [job]?)",
        ),
        (
            ("rounds = 2", "roundz = 2"),
            "job.roundz: unknown key (did you mean 'rounds'?); expected one of task, model, rounds",
        ),
        (
            ('mechanism = "second_price"', 'mechanisms = "second_price"'),
            "regions[0].mechanisms: unknown key (did you mean 'mechanism'?)",
        ),
        (
            ("edge_devices = 4", "edge_devices = 4\nedge_device = 4"),
            "participants.edge_device: unknown key (did you mean 'edge_devices'?)",
        ),
        (
            ("epochs = 3", "epochs = 3\n[failures]\nagent_crashes = [{ agent = 'x', epok = 1 }]"),
            "failures.agent_crashes[0].epok: unknown key (did you mean 'epoch'?)",
        ),
        (("[job]", "[job]\nxyzzy = 1"), "job.xyzzy: unknown key; expected one of task, model"),
    ],
    ids=[
        "zero-rounds",
        "rounds-over-epochs",
        "unknown-mechanism",
        "too-many-devices",
        "seed-type",
        "participants-missing",
        "protected-out-of-band",
        "outage-unknown-region",
        "unknown-model",
        "nan",
        "inf",
        "minus-inf",
        "huge-lora-rank",
        "minilm-lora-rank",
        "huge-edge-devices",
        "too-many-agents",
        "too-many-epochs",
        "too-many-regions",
        "too-many-channels",
        "long-name",
        "outage-ends-before-it-starts",
        "bool-for-int",
        "unknown-top-level-key",
        "top-level-key-of-a-table",
        "unknown-job-key",
        "unknown-region-key",
        "unknown-participants-key",
        "unknown-crash-key",
        "unknown-key-nothing-near",
    ],
)
def test_invalid_scenario_names_file_field_and_rule(
    tmp_path: Path, edit: tuple[str, str], message: str
):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace(*edit))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith("bad.toml: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def _write(data: str | bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)

    return write


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "{path}: no such scenario file"),
        (Path.mkdir, "{path}: is a directory, expected a scenario file (TOML)"),
        (
            _write(b"\x89PNG\r\n\x1a\n\x00\xff"),
            "bad.toml: expected UTF-8 text (TOML), got byte 0x89 at offset 0: not a text file?",
        ),
        (_write(GOOD.encode("utf-16")), "bad.toml: expected UTF-8 text (TOML), got byte 0xff"),
        (_write("epochs = ["), "bad.toml: not valid TOML: "),
        (_write(f"seed = {'9' * 5000}"), "bad.toml: not valid TOML: Exceeds the limit"),
        (_write("a = " + "[" * 100_000), "bad.toml: not valid TOML: nested too deeply"),
        (_write(GOOD + "#" * 2**20), "bad.toml: expected a scenario file of at most 1048576 bytes"),
    ],
    ids=["missing", "directory", "binary", "utf-16", "broken", "huge-integer", "deep", "huge"],
)
def test_unreadable_files(tmp_path: Path, make: Callable[[Path], None], message: str):
    path = tmp_path / "bad.toml"
    make(path)
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith(message.format(path=path))
    assert "\n" not in str(err.value)


def test_the_largest_scenario_allowed_loads(tmp_path: Path):
    """10,000 edge devices (examples/large.toml's target) and every bound at its most."""
    big = (
        GOOD.replace("epochs = 3", "epochs = 1000")
        .replace(
            "edge_devices = 4",
            "edge_devices = 10000\nterrestrial_operators = 999\nedge_servers = 999\n"
            "satellite_operators = 1",
        )
        .replace("rounds = 2", "rounds = 1000")
        .replace("devices_per_round = 2", "devices_per_round = 1000\nlora_rank = 64")
        .replace("id = 1", "id = 65535\nchannels = 256\ncommittee = 32")
    )
    path = tmp_path / "big.toml"
    path.write_text(big)
    sc = load_scenario(path)
    assert sc.participants.total == 12_000 and sc.job.devices_per_round == 1000


def test_bounds_match_what_they_are_bounds_of():
    from training.config import MINILM_DIMENSIONS, EncoderConfig

    assert {
        "small": EncoderConfig().hidden,  # the encoder population.build_job builds
        "minilm": MINILM_DIMENSIONS.hidden,
    } == scenario_module.MAX_LORA_RANK
    for contract, name, ours in [
        ("RootLedger", "MAX_REGIONS", scenario_module.MAX_REGIONS),
        ("RegionMarket", "MAX_COMMITTEE", scenario_module.MAX_COMMITTEE),
    ]:
        source = (ROOT / "contracts" / f"{contract}.vy").read_text()
        assert re.search(rf"^{name}: constant\(uint256\) = {ours}\b", source, re.M), name


# the CLI's main, run in a process of its own; prints what it imported, then exits as main did
_CLI = """
import json, sys
from agents.cli import main
try:
    main(sys.argv[1:])
finally:
    heavy = ("web3", "eth_tester", "eth", "evm", "torch", "transformers", "ledger.chain")
    print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""


def test_simulate_refuses_a_bad_scenario_in_one_line_before_anything_heavy(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text((EXAMPLES / "quickstart.toml").read_text().replace("rounds = 10", "roundz = 10"))
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "simulate", str(bad), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "error: bad.toml: job.roundz: unknown key (did you mean 'rounds'?); expected one of "
        "task, model, rounds, devices_per_round, delay_budget_s, v, budget_eth, lora_rank, "
        "clip_norm, threads, target_epsilon, target_noise_multiplier, gradient_clip_norm, "
        "over_the_air_clip_norm, max_round_delay_s, examples_per_device"
    ]
    assert json.loads(done.stdout) == []  # no chain library, no torch
    assert not out.exists()


def test_strategies():
    assert Truthful().bid_wei(100) == 100
    assert Shaded(0.25).bid_wei(100) == 75
    adaptive = Adaptive(margin=0.1)
    assert adaptive.bid_wei(100) == 100  # nothing learnt yet
    adaptive.observe(40)
    assert adaptive.bid_wei(100) == 44  # just above what cleared
    adaptive.observe(200)
    assert adaptive.bid_wei(100) == 100  # never above the value
    with pytest.raises(ScenarioError, match="unknown strategy"):
        make_strategy("greedy")
    with pytest.raises(ScenarioError, match="shade must be in"):
        Shaded(1.5)


# -- the demand side ([demand], [reserves], buyers, several coordinators) -----------------

BUYERS = "edge_devices = 4\nuplink_buyers = 3\noperator_buyers = 1"


@pytest.mark.parametrize(
    ("edit", "extra", "message"),
    [
        (None, "[demand]\nload = 1.1", "demand: no one buys; set participants.uplink_buyers"),
        (BUYERS, "[demand]\nload = -1", "demand.load: expected a number >= 0.0, got -1"),
        (BUYERS, "[demand]\nload = 11", "demand.load: expected a number <= 10.0, got 11"),
        (BUYERS, "[demand]\nload = nan", "demand.load: expected a finite number"),
        (
            BUYERS,
            "[demand]\nbacklog_epochs = -1",
            "demand.backlog_epochs: expected an integer >= 0, got -1",
        ),
        (
            BUYERS,
            "[demand]\narrivals = 'bursty'",
            "demand.arrivals: expected one of poisson, fixed, got 'bursty'",
        ),
        (
            BUYERS,
            "[demand]\nmax_waiting = 100000",
            "demand.max_waiting: expected an integer <= 4096 (each waiting order is a bid",
        ),
        (
            BUYERS,
            "[demand]\nbacklog = 3",
            "demand.backlog: unknown key (did you mean 'backlog_epochs'?)",
        ),
        (
            BUYERS,
            '[demand]\nuplink_value = { dist = "lognormal", median_wei = 1e12 }',
            "demand.uplink_value.sigma: missing; a lognormal distribution needs median_wei, sigma",
        ),
        (
            BUYERS,
            '[demand]\noperator_value = { dist = "uniform", low_wei = 1e12, hi_wei = 2e12 }',
            "demand.operator_value.hi_wei: unknown parameter of a uniform distribution",
        ),
        (
            None,
            '[reserves]\nsatellite_operators = { dist = "constant", value_wei = 0 }',
            "reserves.satellite_operators.value_wei: expected a number in [1, 1e+24], got 0",
        ),
        (
            None,
            "[reserves]\nsatelite_operators = 1",
            "reserves.satelite_operators: unknown key (did you",
        ),
        (
            "edge_devices = 4\ncoordinators = 9",
            "",
            "participants.coordinators: expected an integer <= 8 (each trains a job every round)",
        ),
        (
            "edge_devices = 4\nuplink_buyers = -1",
            "",
            "participants.uplink_buyers: expected an integer >= 0, got -1",
        ),
    ],
    ids=[
        "demand-without-buyers",
        "negative-load",
        "huge-load",
        "nan-load",
        "negative-backlog",
        "unknown-arrivals",
        "huge-max-waiting",
        "unknown-demand-key",
        "value-missing-parameter",
        "value-unknown-parameter",
        "reserve-out-of-range",
        "unknown-reserve-key",
        "too-many-coordinators",
        "negative-buyers",
    ],
)
def test_invalid_demand_names_file_field_and_rule(
    tmp_path: Path, edit: str | None, extra: str, message: str
):
    text = GOOD if edit is None else GOOD.replace("edge_devices = 4", edit)
    path = tmp_path / "bad.toml"
    path.write_text(text + extra + "\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith("bad.toml: ") and message in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_demand_is_off_unless_the_scenario_has_buyers(tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD)
    sc = load_scenario(path)
    assert sc.demand is None and sc.participants.coordinators == 1
    assert all(
        getattr(sc.reserves, k) is None for k in ("terrestrial_operators", "satellite_operators")
    )
    path.write_text(GOOD.replace("edge_devices = 4", BUYERS))
    sc = load_scenario(path)  # buyers without [demand]: its defaults
    assert sc.demand is not None and (sc.demand.load, sc.demand.backlog_epochs) == (0.5, 0)
    assert sc.participants.total == 1 + 1 + 4 + 1 + 3 + 1


def test_demand_refuses_a_region_whose_mechanism_takes_no_spectrum_only_bids(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace('"second_price"', '"bundle"').replace("edge_devices = 4", BUYERS))
    with pytest.raises(ScenarioError, match="region 1 runs 'bundle', which takes no spectrum"):
        load_scenario(path)


def test_examples_per_device_sizes_the_task_and_is_capped(tmp_path: Path):
    from agents.population import build_job

    path = tmp_path / "data.toml"
    path.write_text(GOOD.replace("rounds = 2", "rounds = 2\nexamples_per_device = 300"))
    job = build_job(load_scenario(path))
    assert sum(job.trainer.examples) == 4 * 300  # 4 edge devices
    path.write_text(GOOD.replace("rounds = 2", "rounds = 2\nexamples_per_device = 60000"))
    with pytest.raises(ScenarioError, match=r"job.examples_per_device: .*50000"):
        load_scenario(path)
