"""The demand side: value distributions, arrivals and the backlog, and runs whose
spectrum buyers and several training jobs trade through the ordinary signed-bid path."""

from __future__ import annotations

import csv
import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from agents.buyers import DemandSide, UplinkBuyer
from agents.demand import (
    Constant,
    DemandSpec,
    LogNormal,
    Normal,
    Uniform,
    parse_distribution,
)
from agents.errors import ScenarioError
from agents.population import build_population
from agents.run import Simulation
from agents.scenario import load_scenario
from ledger.records import Kind, LeaseRecord, Role
from ledger.region import EpochOutcome, Trader
from ledger.tiered import TieredLedger, derive_key

# -- distributions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (3, "expected an inline table such as"),
        ({"dist": "pareto"}, "f.v.dist: expected one of constant, uniform, lognormal, normal"),
        ({"dist": "lognormal", "sigma": 0.5}, "f.v.median_wei: missing; a lognormal"),
        (
            {"dist": "lognormal", "median_wei": 1e12, "sigma": 0.5, "mean_wei": 1},
            "f.v.mean_wei: unknown parameter of a lognormal distribution; expected median_wei",
        ),
        ({"dist": "uniform", "low_wei": 0, "high_wei": 5}, "f.v.low_wei: expected a number in"),
        (
            {"dist": "uniform", "low_wei": 5e12, "high_wei": 1e12},
            "f.v.high_wei: expected more than low_wei (5e+12)",
        ),
        ({"dist": "constant", "value_wei": "1e12"}, "f.v.value_wei: expected a finite number"),
        ({"dist": "constant", "value_wei": math.inf}, "f.v.value_wei: expected a finite number"),
        ({"dist": "lognormal", "median_wei": 1e12, "sigma": 9}, "f.v.sigma: expected a number"),
        (
            {"dist": "normal", "mean_wei": 1e12, "sd_wei": 1e11, "low_wei": 2e12},
            "f.v: expected low_wei (2e+12) <= mean_wei (1e+12)",
        ),
    ],
    ids=[
        "not-a-table",
        "unknown-dist",
        "missing",
        "unknown-param",
        "below-range",
        "empty-range",
        "not-a-number",
        "infinite",
        "sigma-too-wide",
        "mean-outside",
    ],
)
def test_a_bad_distribution_is_one_clear_line(table, message: str):
    with pytest.raises(ScenarioError) as err:
        parse_distribution(table, "f.v")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("table", "reference"),
    [
        (
            {"dist": "uniform", "low_wei": 1e12, "high_wei": 3e12},
            stats.uniform(loc=1e12, scale=2e12),
        ),
        (
            {"dist": "lognormal", "median_wei": 2e12, "sigma": 0.5},
            stats.lognorm(s=0.5, scale=2e12),
        ),
        (
            {"dist": "normal", "mean_wei": 1e12, "sd_wei": 6e11, "low_wei": 2e11},
            stats.truncnorm((2e11 - 1e12) / 6e11, (1e24 - 1e12) / 6e11, loc=1e12, scale=6e11),
        ),
    ],
    ids=["uniform", "lognormal", "normal"],
)
def test_draws_follow_the_named_distribution(table, reference):
    """Kolmogorov-Smirnov against scipy's own distribution, and the mean's formula."""
    dist = parse_distribution(table, "f.v")
    rng = np.random.default_rng(11)
    draws = np.array([dist.draw(rng) for _ in range(4000)], dtype=float)
    assert stats.kstest(draws, reference.cdf).pvalue > 0.01
    assert dist.expected_wei() == pytest.approx(reference.mean(), rel=1e-6)
    assert abs(draws.mean() - reference.mean()) < 4 * reference.std() / math.sqrt(len(draws))


def test_the_lognormal_mean_is_the_textbook_one():
    assert LogNormal(2e12, 0.5).expected_wei() == pytest.approx(2e12 * math.exp(0.125))
    assert Constant(7.0).draw(np.random.default_rng(0)) == 7
    assert Uniform(1, 3).expected_wei() == 2 and isinstance(
        parse_distribution({"dist": "normal", "mean_wei": 5, "sd_wei": 1}, "x"), Normal
    )


# -- arrivals and the backlog, without a chain -------------------------------------------


def _buyers(n: int, region: int = 1) -> list[UplinkBuyer]:
    out = []
    for i in range(n):
        key = derive_key(5, f"buyer-{i}")
        buyer = UplinkBuyer(
            f"uplink-{i}", Role.EDGE_DEVICE, key, (region,), np.random.default_rng(i)
        )
        buyer.traders[region] = Trader(key, None, None)  # type: ignore[arg-type]  # signs nothing here
        out.append(buyer)
    return out


def test_fixed_arrivals_carry_their_fraction():
    """load 1.1 on 10 channels for 10 epochs: 11 a epoch, exactly 110 in all; on 3
    channels: 3.3 a epoch, so 3, 3, 3, 4, ... (the fractions add up), 33 in 10 epochs."""
    for capacity, per_epoch in ((10, [11] * 10), (3, [3, 3, 3, 4, 3, 3, 4, 3, 3, 4])):
        side = DemandSide(
            DemandSpec(load=1.1, arrivals="fixed", backlog_epochs=100, max_waiting=4096),
            _buyers(3),
            np.random.default_rng(1),
        )
        got = []
        for epoch in range(10):
            stats_ = side.epoch.setdefault(1, type(side.totals)())
            stats_.capacity_channels = capacity
            side._arrive(1, epoch, side.buyers, stats_)
            got.append(stats_.arrivals)
            side.epoch.clear()
        assert got == per_epoch
        assert sum(len(b.waiting) for b in side.buyers) == sum(per_epoch)


def test_orders_leave_the_backlog_when_served_or_too_old():
    """backlog_epochs = 2: an order that arrived in epoch 0 bids in epochs 0, 1 and 2 and
    is dropped after epoch 2; one that won a lease leaves at once."""
    (buyer,) = _buyers(1)
    side = DemandSide(DemandSpec(backlog_epochs=2), [buyer], np.random.default_rng(0))
    buyer.waiting = [0, 0, 1]
    buyer._bidding = {10: 0, 11: 0, 12: 1}  # nonce -> arrival, as bid() leaves it
    won = LeaseRecord(
        0, int(Kind.SPECTRUM), "0xseller", buyer.traders[1].address, 11, 0, 1, 0, 1, 5, b"\0" * 32
    )
    other = LeaseRecord(
        0, int(Kind.SPECTRUM), "0xseller", "0xsomeoneelse", 10, 1, 1, 0, 1, 5, b"\0" * 32
    )
    leases = side.settled(0, {1: EpochOutcome(1, 0, True, leases=[won, other])})
    assert leases == {"uplink-0": [(1, won)]}
    assert buyer.waiting == [0, 1] and side.row(1)["served"] == 1
    for epoch in (1, 2):
        side.settled(epoch, {})
    assert buyer.waiting == [1] and side.totals.expired == 1 and side.row(1)["expired"] == 1
    side.settled(3, {})
    assert buyer.waiting == [] and side.summary()["expired"] == 2


def test_arrivals_beyond_max_waiting_are_turned_away():
    side = DemandSide(
        DemandSpec(load=2.0, arrivals="fixed", max_waiting=5), _buyers(2), np.random.default_rng(0)
    )
    st = type(side.totals)(capacity_channels=4)
    side._arrive(1, 0, side.buyers, st)
    assert (st.arrivals, st.turned_away) == (8, 3)
    assert sum(len(b.waiting) for b in side.buyers) == 5


# -- sellers' reserves ---------------------------------------------------------------------

BASE = """
seed = 4
epochs = {epochs}
checkpoint_every = 0
[[regions]]
id = 1
mechanism = "second_price"
channels = 8
[participants]
satellite_operators = 1
terrestrial_operators = 1
edge_servers = 1
edge_devices = 2
coordinators = {coordinators}
uplink_buyers = {buyers}
[job]
rounds = {rounds}
devices_per_round = 1
budget_eth = 2
"""


def test_reserves_come_from_the_named_distribution(tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text(
        BASE.format(epochs=2, coordinators=1, buyers=0, rounds=1)
        + '[reserves]\nterrestrial_operators = { dist = "constant", value_wei = 7e11 }\n'
        + 'edge_devices = { dist = "uniform", low_wei = 1e12, high_wei = 2e12 }\n'
    )
    sc = load_scenario(path)
    agents = build_population(sc, np.random.default_rng(0)).agents
    by_name = {a.name: a for a in agents}
    assert by_name["terrestrial-0"].reserve_wei == 7 * 10**11  # type: ignore[attr-defined]
    # the others as they always were: the same generator, the same calls, the same order
    rng = np.random.default_rng(0)
    rng.uniform()  # the terrestrial operator's (constant) draw
    assert by_name["satellite-0"].reserve_wei == int(10**12 * rng.uniform(0.3, 1))  # type: ignore[attr-defined]
    assert by_name["edge-server-0"].reserve_wei == int(2 * 10**12 * rng.uniform(0.5, 1.5))  # type: ignore[attr-defined]
    for i in range(2):
        assert by_name[f"device-{i}"].reserve_wei == int(rng.uniform(1e12, 2e12))  # type: ignore[attr-defined]


# -- runs: load against capacity -----------------------------------------------------------

# one region of 8 channels, all of them on offer every epoch (terrestrial [0, 4), the
# satellite [4, 8) — always over the only region); buyers value a channel at 5e12 wei,
# above every reserve (at most 1.5e12) and the coordinator's 4e12, so capacity serves
# min(orders, 8) orders an epoch
DEMAND = """
[demand]
load = {load}
arrivals = "fixed"
backlog_epochs = 50
uplink_value = {{ dist = "constant", value_wei = 5e12 }}
"""


async def _run(
    tmp_path: Path, load: float, epochs: int, coordinators: int = 1, rounds: int = 1
) -> tuple[dict, list[dict[str, str]]]:
    path = tmp_path / f"load-{load}.toml"
    path.write_text(
        BASE.format(epochs=epochs, coordinators=coordinators, buyers=4, rounds=rounds)
        + DEMAND.format(load=load)
    )
    out = tmp_path / f"run-{load}"
    summary = await Simulation(load_scenario(path), out).run()
    with (out / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["kind"] == "region"]
    return summary, rows


def _slope(rows: list[dict[str, str]], skip: int = 1) -> float:
    """Least-squares growth of the backlog per epoch (the first ``skip`` epochs left out:
    the coordinator's round takes channels there)."""
    ys = [int(r["backlog"]) for r in rows][skip:]
    return float(np.polyfit(np.arange(len(ys)), ys, 1)[0])


@pytest.mark.slow
async def test_below_capacity_the_backlog_stays_bounded(tmp_path: Path):
    summary, rows = await _run(tmp_path, load=0.5, epochs=8)
    assert [int(r["capacity_channels"]) for r in rows] == [8] * 8
    assert [int(r["arrivals"]) for r in rows] == [4] * 8  # 0.5 x 8
    assert max(int(r["backlog"]) for r in rows[1:]) <= 4 and abs(_slope(rows)) < 0.3
    assert summary["demand"]["served"] + summary["demand"]["backlog"] == 32
    assert summary["demand"]["expired"] == 0


@pytest.mark.slow
async def test_above_capacity_the_backlog_grows_linearly(tmp_path: Path):
    """load 1.5 on 8 channels: 12 orders arrive, at most 8 are served: +4 an epoch."""
    summary, rows = await _run(tmp_path, load=1.5, epochs=8)
    assert [int(r["arrivals"]) for r in rows] == [12] * 8
    assert _slope(rows) == pytest.approx(4.0, abs=0.5)
    backlog = [int(r["backlog"]) for r in rows]
    assert all(b2 > b1 for b1, b2 in itertools.pairwise(backlog[1:]))
    # every order that was served is a lease on the chain bought by a buyer's own key
    ledger = await TieredLedger.open(tmp_path / "run-1.5")
    rt = ledger.regions[1]
    await rt.sequencer.sync()
    buyers = {derive_address(4, f"uplink-{i}") for i in range(4)}
    bought = [rec for rec in rt.sequencer.records.values() if rec.buyer in buyers]
    assert len(bought) == summary["demand"]["served"] == sum(int(r["served"]) for r in rows)
    assert all(rec.kind == Kind.SPECTRUM and rec.price_wei <= 5 * 10**12 for rec in bought)
    assert await rt.market.escrow_conserved()
    await ledger.close()


def derive_address(seed: int, name: str) -> str:
    return Trader(derive_key(seed, f"agent-{name}"), None, None).address  # type: ignore[arg-type]


@pytest.mark.slow
async def test_several_training_jobs_compete_for_the_same_devices(tmp_path: Path):
    summary, _ = await _run(tmp_path, load=0.5, epochs=3, coordinators=2, rounds=2)
    jobs = summary["jobs"]
    assert [j["job_id"] for j in jobs] == [1, 2] and len({j["address"] for j in jobs}) == 2
    with (tmp_path / "run-0.5" / "metrics.csv").open() as f:
        rounds = [r for r in csv.DictReader(f) if r["kind"] == "round"]
    assert {r["job"] for r in rounds} <= {"1", "2"} and rounds
    ledger = await TieredLedger.open(tmp_path / "run-0.5")
    rt = ledger.regions[1]
    await rt.sequencer.sync()
    devices = {derive_address(4, f"device-{i}") for i in range(2)}
    device_leases = [r for r in rt.sequencer.records.values() if r.seller in devices]
    # two devices, two jobs each wanting one: each device is leased once a slot, at most,
    # and each job won devices (the mechanism decided between them)
    slots = [(r.seller, r.start) for r in device_leases]
    assert len(slots) == len(set(slots))
    assert {r.buyer for r in device_leases} == {j["address"] for j in jobs}
    for j in jobs:
        done = await ledger.root.binding.call("jobs", j["job_id"])
        assert done[3] == j["rounds"]  # the root confirmed each job's rounds
    await ledger.close()


@pytest.mark.slow
async def test_a_run_with_buyers_and_two_jobs_resumes_to_the_uninterrupted_run(tmp_path: Path):
    """The backlog, the buyers' valuations and both jobs are checkpointed: a run
    interrupted after epoch 1 and resumed leases and records exactly what one run does."""
    path = tmp_path / "s.toml"
    path.write_text(
        BASE.format(epochs=4, coordinators=2, buyers=4, rounds=2)
        + DEMAND.format(load=1.5).replace('"fixed"', '"poisson"')
    )
    whole = await Simulation(load_scenario(path), tmp_path / "whole").run()

    def interrupt(report) -> None:
        if report.epoch == 1:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    first = await Simulation(load_scenario(path), out, progress=interrupt).run()
    assert first["interrupted"] is True
    resumed = await Simulation(load_scenario(out / "scenario.toml"), out, resume=True).run()
    assert resumed["complete"] is True and resumed["resumes"] == 1
    assert resumed["history_sha256"] == whole["history_sha256"]
    assert resumed["demand"] == whole["demand"] and resumed["demand"]["served"] > 0
    for name in ("metrics.csv", "rounds.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
