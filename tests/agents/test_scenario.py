"""Scenario files: the examples load; invalid files name the file, the field, the rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.errors import ScenarioError
from agents.scenario import load_scenario
from agents.strategies import Adaptive, Shaded, Truthful, make_strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

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


@pytest.mark.parametrize("name", ["quickstart.toml", "scale.toml"])
def test_examples_load(name: str):
    sc = load_scenario(EXAMPLES / name)
    assert sc.regions and sc.job.rounds <= sc.epochs


def test_scale_example_has_at_least_1000_agents():
    assert load_scenario(EXAMPLES / "scale.toml").participants.total >= 1000


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
            "job.devices_per_round: expected an integer >= 1 <= 4, got 5",
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


def test_unreadable_files(tmp_path: Path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.toml")
    (tmp_path / "broken.toml").write_text("epochs = [")
    with pytest.raises(ScenarioError, match="broken.toml: not valid TOML"):
        load_scenario(tmp_path / "broken.toml")


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
