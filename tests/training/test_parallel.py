"""Collaborative edge training: the planner, and the four parallelisms run for real."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from training.errors import TrainingConfigError, TrainingError
from training.parallel import (
    MODES,
    DeviceProfile,
    PoolCannotFit,
    TransformerShape,
    estimate,
    lease_request,
    plan,
)
from training.parallel.execute import ParallelRunFailed, run_parallel, step_batch
from training.parallel.model import Reference, reference_part
from training.parallel.pool import load_pool

TINY = TransformerShape()  # 2 layers, hidden 32, 4 heads, seq 16, batch 4, 2 microbatches
GIB = 2**30
EXAMPLE = Path(__file__).parents[2] / "examples" / "edge_pool.toml"


def device(name: str = "d", **over: float) -> DeviceProfile:
    base = dict(
        flops_per_s=1e12,
        memory_bytes=8 * GIB,
        link_bytes_per_s=125e6,
        link_latency_s=1e-3,
        idle_w=5.0,
        active_w=30.0,
        link_w=2.0,
    )
    return DeviceProfile(name=name, **{**base, **over})  # type: ignore[arg-type]


# -- real execution ----------------------------------------------------------------------------
def reference_step(shape: TransformerShape) -> tuple[float, dict[str, torch.Tensor]]:
    model = Reference(shape, seed=0)
    tokens, labels = step_batch(shape, 0)
    loss = model(tokens, labels)
    loss.backward()
    return float(loss.detach()), {
        n: p.grad for n, p in model.named_parameters() if p.grad is not None
    }


# stated tolerance: float32, summation order differs between the splits
ATOL, RTOL = 1e-5, 1e-4


@pytest.mark.multiproc
@pytest.mark.parametrize(
    "mode,world,shape",
    [
        ("data", 2, TINY),
        ("sequence", 2, TINY),
        ("tensor", 2, TINY),
        ("pipeline", 2, TINY),
        ("pipeline", 4, replace(TINY, layers=4, microbatches=4)),
    ],
    ids=["data", "sequence", "tensor", "pipeline", "pipeline-4-stages"],
)
def test_one_step_matches_single_process_training(mode, world, shape):
    loss, grads = reference_step(shape)
    run = run_parallel(mode, shape, world, steps=2)
    assert run.loss == pytest.approx(loss, rel=RTOL)
    seen: set[str] = set()
    for rank, rank_grads in enumerate(run.grads):
        for name, grad in rank_grads.items():
            want = grads[name]
            if mode == "tensor" and name.startswith("layers."):
                want = reference_part(want, name.split(".", 2)[2], shape, rank, world)
            torch.testing.assert_close(grad, want, atol=ATOL, rtol=RTOL, msg=name)
            seen.add(name)
    assert seen == set(grads)  # every parameter is trained by some rank
    # bytes on the wire (measured from /proc/self/io) against the planner's count
    est = estimate(mode, shape, [device()] * world)
    assert run.bytes_per_step == pytest.approx(est.bytes_per_step, rel=0.1)
    assert run.step_s > 0


@pytest.mark.multiproc
def test_a_failing_worker_gives_a_clear_error():
    with pytest.raises(TrainingError, match="tensor parallelism on 3 devices: heads 4"):
        run_parallel("tensor", TINY, 3)
    with pytest.raises(ParallelRunFailed, match="rank 0 of 2: did not finish in time"):
        run_parallel("data", TINY, 2, timeout_s=0.5)


# -- the planner ---------------------------------------------------------------------------------
BIG = TransformerShape(
    layers=24, hidden=2048, heads=16, ffn=8192, vocab=32000, seq_len=512, batch=8, microbatches=8
)


def test_a_model_too_big_for_one_device_is_planned_with_pipeline_or_tensor():
    assert BIG.state_bytes(BIG.params) > 12 * GIB
    pool = [device(f"d{i}", memory_bytes=12 * GIB) for i in range(4)]
    result = plan(BIG, pool, "energy")
    assert result.chosen.mode in ("pipeline", "tensor")
    assert result.chosen.devices >= 2 and result.chosen.fits
    for mode in ("data", "sequence"):
        assert result.reasons[mode].startswith("does not fit: needs")
        assert "GiB per device" in result.reasons[mode]


def test_a_pool_that_cannot_fit_the_model_says_which_constraint_fails():
    pool = [device(f"d{i}", memory_bytes=1 * GIB) for i in range(2)]
    with pytest.raises(PoolCannotFit) as caught:
        plan(BIG, pool)
    text = str(caught.value)
    assert "no plan fits a model of" in text
    for mode in MODES:
        assert f"  {mode}: at best" in text
    assert "the smallest of the 2 taking part has 1.00 GiB" in text


@pytest.mark.parametrize(
    "shape,mode,why",
    [
        (replace(TINY, heads=4), "tensor", "heads 4 / ffn 64 do not divide by 3"),
        (TINY, "data", "batch 4 does not divide by 3"),
        (replace(TINY, seq_len=16), "sequence", "seq_len 16 does not divide by 3"),
        (TINY, "pipeline", "2 layers cannot fill 3 stages"),
    ],
    ids=["tensor-heads", "data-batch", "sequence-length", "pipeline-layers"],
)
def test_splits_that_do_not_divide_are_refused(shape, mode, why):
    e = estimate(mode, shape, [device()] * 3)
    assert not e.fits and e.why_not == why


def test_each_objective_gets_its_own_best():
    # more devices finish sooner, but their messages cost energy that one device saves
    pool = [device(f"d{i}", link_bytes_per_s=1e9, link_latency_s=1e-4) for i in range(4)]
    shape = replace(BIG, layers=4, hidden=512, heads=8, ffn=2048, vocab=1000, seq_len=128)
    by_energy = plan(shape, pool, "energy")
    by_latency = plan(shape, pool, "latency")
    mixed = plan(shape, pool, "mixed", energy_weight=0.5)
    assert by_latency.chosen.step_s <= by_energy.chosen.step_s
    assert by_energy.chosen.energy_j <= by_latency.chosen.energy_j
    assert by_energy.chosen != by_latency.chosen  # here the two really differ
    for result in (by_energy, by_latency, mixed):
        assert set(result.others) | {result.chosen.mode} == set(MODES)
        assert all(result.reasons[m] for m in result.others)
    # the chosen one is the best feasible estimate for its objective
    for p in range(1, len(pool) + 1):
        fastest = sorted(pool, key=lambda d: -d.flops_per_s)[:p]
        for mode in MODES:
            e = estimate(mode, shape, fastest)
            if e.fits:
                assert by_energy.chosen.energy_j <= e.energy_j
                assert by_latency.chosen.step_s <= e.step_s


def test_estimates_follow_the_resources():
    pool = [device(f"d{i}") for i in range(4)]
    for mode in MODES:
        base = estimate(mode, TINY, pool)
        faster_link = estimate(mode, TINY, [replace(d, link_bytes_per_s=1e9) for d in pool])
        faster_cpu = estimate(mode, TINY, [replace(d, flops_per_s=1e13) for d in pool])
        assert (
            faster_link.step_s < base.step_s and faster_link.bytes_per_step == base.bytes_per_step
        )
        assert faster_cpu.step_s < base.step_s
    # pipeline only sends the cut; data sends every gradient
    assert (
        estimate("pipeline", BIG, pool).bytes_per_step < estimate("data", BIG, pool).bytes_per_step
    )
    # tensor and pipeline split the weights; data and sequence hold them whole
    whole = estimate("data", BIG, pool).memory_bytes
    assert estimate("tensor", BIG, pool).memory_bytes < whole
    assert estimate("pipeline", BIG, pool).memory_bytes < whole


def test_bad_plan_arguments():
    with pytest.raises(TrainingError, match="unknown objective 'cheap'"):
        plan(TINY, [device()], "cheap")  # type: ignore[arg-type]
    with pytest.raises(TrainingError, match="devices = 3: the pool has 1"):
        plan(TINY, [device()], devices=3)
    with pytest.raises(PoolCannotFit, match="the pool is empty"):
        plan(TINY, [])
    with pytest.raises(TrainingConfigError, match="active_w .* must be >= idle_w"):
        device(active_w=1.0, idle_w=5.0)


# -- the link to the market -----------------------------------------------------------------------
def test_a_plan_becomes_a_lease_request():
    pool = [device(f"d{i}", memory_bytes=12 * GIB) for i in range(4)]
    chosen = plan(BIG, pool, "energy")
    lease = lease_request(chosen, 100, channel_width_hz=10e6, spectral_efficiency_bps_per_hz=5)
    assert lease.devices == chosen.chosen.devices and lease.mode == chosen.chosen.mode
    assert lease.link_bits_per_s == 8 * 125e6
    assert lease.channels_per_device == 20  # 1 Gbit/s over 50 Mbit/s channels
    assert lease.duration_s == pytest.approx(100 * chosen.chosen.step_s)
    assert lease.bytes_total == 100 * chosen.chosen.bytes_per_step
    with pytest.raises(TrainingError, match="steps = 0"):
        lease_request(chosen, 0, channel_width_hz=10e6)


# -- pool files -----------------------------------------------------------------------------------
def test_the_example_pool_plans():
    pf = load_pool(EXAMPLE)
    assert len(pf.devices) == 6
    result = plan(pf.shape, pf.devices, pf.objective)
    assert result.chosen.mode in ("pipeline", "tensor")  # 1.3 B parameters fit on no device


@pytest.mark.parametrize(
    "text,message",
    [
        ("objective = ", "not valid TOML"),
        ("[model]\nlayer = 2\n", "model: unknown field(s) ['layer']"),
        ("[model]\nhidden = 30\n", "TransformerShape.hidden = 30: must be a multiple of heads"),
        ("", "devices: expected a non-empty [[devices]] array"),
        (
            "[[devices]]\nflops_per_s = 1e12\nmemory_gib = -1\nlink_mbit_per_s = 100\n"
            "idle_w = 1\nactive_w = 2\n",
            "devices[0].memory_gib: expected a number >= 0, got -1",
        ),
        ("[[devices]]\nflops_per_s = 1e12\n", "devices[0].memory_gib: missing"),
        (
            "[[devices]]\ncount = 0\n",
            "devices[0].count: expected an integer >= 1, got 0",
        ),
        (
            'objective = "cheap"\n[[devices]]\nflops_per_s = 1e12\nmemory_gib = 1\n'
            "link_mbit_per_s = 100\nidle_w = 1\nactive_w = 2\n",
            "objective: expected energy, latency or mixed, got 'cheap'",
        ),
    ],
    ids=[
        "toml",
        "model-field",
        "model-rule",
        "no-devices",
        "negative",
        "missing",
        "count",
        "objective",
    ],
)
def test_bad_pool_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "pool.toml"
    path.write_text(text)
    with pytest.raises(TrainingConfigError) as caught:
        load_pool(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(("pool.toml: ", f"{path}: "))


@pytest.mark.multiproc
def test_torchrun_launches_the_same_worker(tmp_path: Path):
    """The rendezvous is torch.distributed's own: torchrun (or any env:// launcher) works."""
    import subprocess
    import sys

    from training.parallel.execute import _free_port

    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp_path / "ranks"
    subprocess.run(
        [
            str(torchrun),
            "--nnodes=1",
            "--nproc-per-node=2",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint=127.0.0.1:{_free_port()}",
            "-m",
            "training.parallel.execute",
            "--mode=pipeline",
            f"--out={out}",
            "--steps=1",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    loss, grads = reference_step(TINY)
    last = torch.load(out / "rank1.pt")
    assert last["loss"] == pytest.approx(loss, rel=RTOL)
    torch.testing.assert_close(
        last["grads"]["head.weight"], grads["head.weight"], atol=ATOL, rtol=RTOL
    )
