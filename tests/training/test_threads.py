"""Training chooses its intra-op thread count: one thread for a small model under "auto"."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from agents.errors import ScenarioError
from agents.scenario import load_scenario
from training.config import MINILM_DIMENSIONS, EncoderConfig, FederatedConfig, LoraSettings
from training.errors import TrainingConfigError
from training.federated import FederatedTrainer
from training.models import ServerModel, build_encoder
from training.tasks import sensor_task
from training.threads import (
    SMALL_MODEL_PARAMETERS,
    TORCH_DEFAULT_THREADS,
    apply_threads,
    choose_threads,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _threads_back():
    """set_num_threads is process-global: give the other tests back what they had."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _trainer(encoder: EncoderConfig, **config) -> FederatedTrainer:
    task = sensor_task(examples=120, test=20, seed=0)
    server = ServerModel(build_encoder(encoder), LoraSettings(rank=4, alpha=8))
    return FederatedTrainer(
        task, server, FederatedConfig(devices=2, devices_per_round=1, local_steps=1, **config)
    )


def test_auto_is_one_thread_below_the_threshold_and_torch_default_above():
    assert choose_threads(SMALL_MODEL_PARAMETERS - 1) == 1
    assert choose_threads(SMALL_MODEL_PARAMETERS) == TORCH_DEFAULT_THREADS
    assert choose_threads(SMALL_MODEL_PARAMETERS, 3) == 3  # a configured count wins
    assert choose_threads(10, 2) == 2


def test_a_small_sensor_job_trains_on_one_thread():
    torch.set_num_threads(2)
    trainer = _trainer(EncoderConfig())  # the scenario's "small" encoder
    assert trainer.parameter_count < SMALL_MODEL_PARAMETERS
    assert trainer.threads == 1 and torch.get_num_threads() == 1
    trainer.run_round()
    assert torch.get_num_threads() == 1


def test_a_large_model_gets_torch_default_even_after_a_small_one():
    _trainer(EncoderConfig())
    assert torch.get_num_threads() == 1
    big = _trainer(MINILM_DIMENSIONS)
    assert big.parameter_count >= SMALL_MODEL_PARAMETERS
    assert big.threads == TORCH_DEFAULT_THREADS == torch.get_num_threads()


def test_a_configured_thread_count_wins():
    trainer = _trainer(EncoderConfig(), threads=2)
    assert trainer.threads == 2 and torch.get_num_threads() == 2
    assert apply_threads(10, 3) == 3 and torch.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, "x", True, 1.5, None])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(TrainingConfigError, match="threads"):
        FederatedConfig(threads=bad)
    with pytest.raises(TrainingConfigError, match="threads"):
        choose_threads(10, bad)


def _scenario(tmp_path: Path, line: str) -> Path:
    text = (EXAMPLES / "quickstart.toml").read_text()
    assert "\n[job]\n" in text
    path = tmp_path / "threads.toml"
    path.write_text(text.replace("\n[job]\n", f"\n[job]\n{line}\n"))
    return path


@pytest.mark.parametrize(
    "line,threads", [("", "auto"), ('threads = "auto"', "auto"), ("threads = 2", 2)]
)
def test_the_scenario_reads_threads(tmp_path: Path, line: str, threads):
    assert load_scenario(_scenario(tmp_path, line)).job.threads == threads


@pytest.mark.parametrize(
    "line,message",
    [
        ("threads = 0", 'job.threads: expected "auto" or an integer >= 1, got 0'),
        ("threads = -1", 'job.threads: expected "auto" or an integer >= 1, got -1'),
        (
            'threads = "x"',
            'job.threads: expected "auto" or an integer >= 1 <= 256 '
            "(more threads than cores only contend), got 'x'",
        ),
        (
            "threads = 1000",
            'job.threads: expected "auto" or an integer <= 256 '
            "(more threads than cores only contend), got 1000",
        ),
        ("threads = true", 'job.threads: expected "auto" or an integer >= 1 <= 256'),
    ],
)
def test_bad_scenario_threads_are_one_clear_line(tmp_path: Path, line: str, message: str):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_scenario(tmp_path, line))
    text = str(caught.value)
    assert "\n" not in text and message in text
    assert text.startswith("threads.toml: ")
