"""The Lyapunov scheduler: delay budget and per-round cap, the V trade-off and its
optimality gap against a brute force, bandwidth, and bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linprog

from training.channel import ChannelState, DeviceProfile
from training.config import ChannelConfig, EncoderConfig, FederatedConfig, LoraSettings
from training.errors import TrainingConfigError
from training.federated import FederatedTrainer
from training.job import MAX_WAIT_SLOTS, ScheduledJob
from training.models import ServerModel, build_encoder
from training.scheduler import (
    LyapunovScheduler,
    SchedulerConfig,
    common_finish,
    min_bandwidth_hz,
)
from training.scheduler_bench import (
    BENCH_VS,
    Cell,
    bench_scheduler,
    draw_states,
    make_cell,
    static_optimum,
    subset_table,
)
from training.tasks import sensor_task

N0 = 10 ** ((-174 - 30) / 10)


def cell(k: int = 12, seed: int = 0) -> tuple[list[DeviceProfile], ChannelState]:
    rng = np.random.default_rng(seed)
    profiles = [
        DeviceProfile(distance_m=float(d), flops_per_s=float(f), examples=int(e))
        for d, f, e in zip(
            rng.uniform(30, 250, k),
            rng.uniform(5e9, 3e10, k),
            rng.integers(50, 400, k),
            strict=True,
        )
    ]
    return profiles, ChannelState(ChannelConfig(), profiles, rng)


def simulate(v: float, rounds: int, budget_s: float = 0.5) -> tuple[float, float]:
    profiles, channel = cell()
    scheduler = LyapunovScheduler(
        SchedulerConfig(v=v, delay_budget_s=budget_s, upload_bits=8e6, compute_flops=2e9)
    )
    delays, counts = [], []
    for _ in range(rounds):
        channel.advance()
        a = np.array([p.tx_power_w for p in profiles]) * channel.path_gain() / N0
        schedule = scheduler.decide(
            range(len(profiles)),
            [p.examples for p in profiles],
            a,
            [p.flops_per_s for p in profiles],
            20e6,
        )
        assert sum(schedule.bandwidth_hz.values()) <= 20e6 * (1 + 1e-9)
        scheduler.observe(schedule.delay_s)
        delays.append(schedule.delay_s)
        counts.append(len(schedule.devices))
    return float(np.mean(delays)), float(np.mean(counts))


@pytest.mark.slow
def test_long_run_average_delay_stays_within_5_percent_of_the_budget():
    mean_delay, _ = simulate(v=1.0, rounds=600)
    assert abs(mean_delay - 0.5) / 0.5 <= 0.05, mean_delay


def test_budget_binds_the_unconstrained_choice():
    # with Q = 0 the scheduler would take everyone; the queue pulls the delay to the budget
    profiles, channel = cell()
    s = LyapunovScheduler(
        SchedulerConfig(v=1.0, delay_budget_s=0.5, upload_bits=8e6, compute_flops=2e9)
    )
    a = np.array([p.tx_power_w for p in profiles]) * channel.path_gain() / N0
    first = s.decide(
        range(12), [p.examples for p in profiles], a, [p.flops_per_s for p in profiles], 20e6
    )
    assert len(first.devices) == 12 and first.delay_s > 0.5


def test_larger_v_schedules_more_devices_at_a_higher_delay():
    low_delay, low_count = simulate(v=0.5, rounds=150)
    high_delay, high_count = simulate(v=50.0, rounds=150)
    assert high_count > low_count
    assert high_delay > low_delay


@pytest.mark.slow
def test_larger_v_reaches_a_lower_loss_with_real_training():
    outcome = {}
    for v in (0.02, 20.0):
        profiles, channel = cell(k=10, seed=1)
        task = sensor_task(examples=1500, test=400, seed=1)
        server = ServerModel(build_encoder(EncoderConfig(), seed=1), LoraSettings())
        trainer = FederatedTrainer(
            task, server, FederatedConfig(devices=10, seed=1, learning_rate=3e-3)
        )
        profiles = [
            DeviceProfile(p.distance_m, p.flops_per_s, examples=n)
            for p, n in zip(profiles, trainer.examples, strict=True)
        ]
        scheduler = LyapunovScheduler(
            SchedulerConfig(v=v, delay_budget_s=0.3, upload_bits=8e6, compute_flops=2e9)
        )
        job = ScheduledJob(trainer, scheduler, channel, profiles, bandwidth_hz=20e6)
        rounds = [job.run_round() for _ in range(6)]
        outcome[v] = (
            np.mean([len(r.schedule.devices) for r in rounds]),
            rounds[-1].result.test_loss,
            np.mean([r.delay_s for r in rounds]),
        )
    (low_n, low_loss, low_delay), (high_n, high_loss, high_delay) = outcome[0.02], outcome[20.0]
    assert high_n > low_n, outcome
    assert high_loss < low_loss, outcome
    assert high_delay > low_delay, outcome


def test_min_bandwidth_is_the_inverse_of_the_rate():
    a = np.array([1e9, 5e8, 2e7])
    rate = np.array([2e7, 1e7, 1e7])
    b = min_bandwidth_hz(rate, a)
    assert np.allclose(b * np.log2(1 + a / b), rate, rtol=1e-6)
    unreachable = min_bandwidth_hz(np.array([1e9]), np.array([1e6]))  # above a / ln 2
    assert np.isinf(unreachable).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay_budget_s": 0}, "delay_budget_s must be > 0"),
        ({"v": -1}, "v must be >= 0"),
        ({"min_devices": 0}, "min_devices must be >= 1"),
        ({"min_devices": 3, "max_devices": 2}, "max_devices must be >= min_devices"),
    ],
)
def test_bad_scheduler_config(kwargs: dict, message: str):
    base = {"v": 1.0, "delay_budget_s": 1.0, "upload_bits": 1e6, "compute_flops": 1e9}
    with pytest.raises(TrainingConfigError, match=message):
        SchedulerConfig(**{**base, **kwargs})


def test_negative_bandwidth_is_refused():
    _, channel = cell(k=3)
    with pytest.raises(TrainingConfigError, match="bandwidth_hz must be >= 0"):
        channel.rate_bps(np.array([1e6, -1.0, 1e6]))
    s = LyapunovScheduler(
        SchedulerConfig(v=1, delay_budget_s=1, upload_bits=1e6, compute_flops=1e9)
    )
    with pytest.raises(TrainingConfigError, match="bandwidth_hz must be > 0"):
        s.decide([0], [10], [1e9], [1e9], -5.0)


# -- the per-round cap (issue 17, point 4) ---------------------------------------------


def state(cell: Cell, fade: np.ndarray) -> np.ndarray:
    return cell.mean_gain_over_noise_hz * fade


def test_default_cap_is_four_times_the_budget_and_a_cap_below_the_budget_is_refused():
    base = {"v": 1.0, "delay_budget_s": 0.5, "upload_bits": 1e6, "compute_flops": 1e9}
    assert SchedulerConfig(**base).round_cap_s == 2.0
    assert SchedulerConfig(**base, max_round_delay_s=3.0).round_cap_s == 3.0
    with pytest.raises(TrainingConfigError, match=r"max_round_delay_s must be >= delay_budget_s"):
        SchedulerConfig(**base, max_round_delay_s=0.4)


def test_at_zero_backlog_a_device_in_a_deep_fade_is_left_out():
    # Q = 0: the objective is the penalty alone, which every extra device lowers; before
    # the cap the scheduler took all 8, the faded one too, past the cap
    cell = make_cell(8, seed=0)
    fade = np.ones(8)
    fade[3] = 1e-4  # 40 dB down
    gains = state(cell, fade)
    table = subset_table(cell, gains[None])
    everyone = table.masks.all(axis=1)
    assert table.delay_s[0, everyone][0] > cell.config.round_cap_s  # the old choice
    s = LyapunovScheduler(cell.config)
    chosen = s.decide(range(8), cell.examples, gains, cell.flops_per_s, cell.bandwidth_hz)
    assert s.queue == 0 and 3 not in chosen.devices
    assert chosen.delay_s <= cell.config.round_cap_s
    # and it is the best set under the cap: the brute force's least penalty there
    fits = table.delay_s[0] <= cell.config.round_cap_s
    assert chosen.penalty == pytest.approx(table.penalty[0, fits].min(), rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_no_planned_round_exceeds_the_cap_over_fading(seed: int):
    profiles, channel = cell(k=12, seed=seed)
    cfg = SchedulerConfig(
        v=0.1, delay_budget_s=0.5, upload_bits=8e6, compute_flops=2e9, max_round_delay_s=1.0
    )
    s = LyapunovScheduler(cfg)
    delays = []
    for _ in range(60):
        channel.advance()
        a = np.array([p.tx_power_w for p in profiles]) * channel.path_gain() / N0
        plan = s.decide(
            range(12), [p.examples for p in profiles], a, [p.flops_per_s for p in profiles], 20e6
        )
        # each chosen device really finishes by the planned delay on its bandwidth
        for k, b in plan.bandwidth_hz.items():
            finish = 2e9 / profiles[k].flops_per_s + 8e6 / (b * np.log2(1 + a[k] / b))
            assert finish <= plan.delay_s * (1 + 1e-6)
        s.observe(plan.delay_s)
        delays.append(plan.delay_s)
    assert max(delays) <= 1.0


def test_when_nothing_fits_the_round_is_planned_empty():
    cell_ = make_cell(5, seed=0)
    s = LyapunovScheduler(cell_.config)
    s.queue = 1.5
    gains = state(cell_, np.full(5, 1e-5))
    plan = s.decide(range(5), cell_.examples, gains, cell_.flops_per_s, cell_.bandwidth_hz)
    assert plan.devices == () and plan.delay_s == 0.0 and plan.penalty == np.inf
    assert s.queue == 1.5  # nothing ran, nothing observed


def test_a_job_waits_for_the_channel_then_says_what_to_change():
    task = sensor_task(examples=200, test=50, seed=0)
    server = ServerModel(build_encoder(EncoderConfig(), seed=0), LoraSettings())
    trainer = FederatedTrainer(
        task, server, FederatedConfig(devices=3, devices_per_round=3, seed=0)
    )
    profiles = [
        DeviceProfile(distance_m=100.0, examples=n, flops_per_s=1e10) for n in trainer.examples
    ]
    rng = np.random.default_rng(0)
    channel = ChannelState(ChannelConfig(), profiles, rng)
    # a 4 s upload on even the whole 20 MHz at 100 m: never under a 2 s cap
    cfg = SchedulerConfig(v=1.0, delay_budget_s=0.5, upload_bits=1e10, compute_flops=1e9)
    job = ScheduledJob(trainer, LyapunovScheduler(cfg), channel, profiles, bandwidth_hz=20e6)
    with pytest.raises(TrainingConfigError, match=r"within max_round_delay_s \(2.0 s\)"):
        job.run_round()
    assert len(job.scheduler.history) == MAX_WAIT_SLOTS


def test_common_finish_splits_the_band_so_all_finish_together():
    rng = np.random.default_rng(3)
    compute = rng.uniform(0.05, 0.3, 5)
    a = rng.uniform(2e7, 3e8, 5)
    t, b = common_finish(8e6, compute, a, 20e6)
    assert b.sum() == pytest.approx(20e6, rel=1e-6)
    assert np.allclose(compute + 8e6 / (b * np.log2(1 + a / b)), float(t), rtol=1e-6)


# -- the optimality gap (training.scheduler_bench) -------------------------------------


def test_the_static_optimum_is_the_lp_over_randomised_policies():
    cell_ = make_cell(4, seed=2)
    gains = draw_states(cell_, 20, np.random.default_rng(5))
    table = subset_table(cell_, gains)
    cap = cell_.config.round_cap_s
    ok = table.delay_s <= cap
    pens = [table.penalty[w, ok[w]] for w in range(20)]
    dels = [table.delay_s[w, ok[w]] for w in range(20)]
    opt, lam = static_optimum(pens, dels, 0.5)
    # the primal: a probability over the allowed sets in each state
    c = np.concatenate(pens) / 20
    d = np.concatenate(dels) / 20
    sizes = [len(p) for p in pens]
    rows = np.zeros((20, len(c)))
    for w, start in enumerate(np.cumsum([0, *sizes[:-1]])):
        rows[w, start : start + sizes[w]] = 1
    lp = linprog(c, A_ub=d[None], b_ub=[0.5], A_eq=rows, b_eq=np.ones(20), bounds=(0, 1))
    assert lp.status == 0
    assert opt == pytest.approx(lp.fun, rel=1e-7)
    assert lam == pytest.approx(-lp.ineqlin.marginals[0], rel=1e-4)
    assert lam > 0  # the budget binds: without it the penalty would be lower


def test_gap_shrinks_like_one_over_v_and_the_backlog_grows_like_v():
    r = bench_scheduler(devices=6, states=64)
    lam = r["optimum_lambda"]
    for policy in (r, r["exact"]):
        gap = [policy["lagrangian_gap"][str(v)] for v in BENCH_VS]
        assert gap[0] > gap[1] > gap[2] >= gap[3] - 1e-5, gap
        assert min(gap) >= -1e-5  # no policy beats the optimum once slack is priced
        assert gap[3] < 0.01 * gap[0], gap
        for v in (1.0, 10.0, 100.0):  # Q / V settles at the LP's multiplier
            assert policy["backlog"][str(v)] / v == pytest.approx(lam, rel=0.15)
    # the theorem's bound, B / V with B = max (D - D_avg)^2 / 2 (D in [0, cap])
    b = max(r["max_round_delay_s"] - 0.5, 0.5) ** 2 / 2
    for v in BENCH_VS:
        assert r["exact"]["optimality_gap"][str(v)] <= b / v
    assert max(r["max_delay_s"].values()) <= r["max_round_delay_s"]


@pytest.mark.slow
def test_bench_scheduler_reports_the_gap_per_v_within_the_cap():
    r = bench_scheduler()
    assert set(r["optimality_gap"]) == {str(v) for v in BENCH_VS}
    assert max(r["max_delay_s"].values()) <= r["max_round_delay_s"] == 2.0
    exact = [r["exact"]["lagrangian_gap"][str(v)] for v in BENCH_VS]
    assert exact[0] > exact[1] > exact[2] and exact[3] < 0.01 * exact[0], exact
    # the heuristic cannot beat its own candidates' optimum however large V is
    assert r["lagrangian_gap"]["100.0"] >= r["scheduler_floor"] - 1e-3
    assert r["time_s"] < 60


def quickstart_job(**job: float) -> dict:
    data = tomllib.loads(
        (Path(__file__).resolve().parents[2] / "examples" / "quickstart.toml").read_text()
    )
    data["job"].update(job)
    return data


def test_the_scenario_carries_the_cap_and_refuses_one_below_the_budget():
    from agents.errors import ScenarioError
    from agents.scenario import scenario_from_dict

    assert scenario_from_dict(quickstart_job(), Path("q.toml")).job.max_round_delay_s is None
    got = scenario_from_dict(quickstart_job(max_round_delay_s=8.0), Path("q.toml"))
    assert got.job.max_round_delay_s == 8.0
    with pytest.raises(
        ScenarioError,
        match=r"q.toml: job.max_round_delay_s: expected >= delay_budget_s \(2.0\).*got 1.0",
    ):
        scenario_from_dict(quickstart_job(max_round_delay_s=1.0), Path("q.toml"))
