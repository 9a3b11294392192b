"""The split model equals the monolithic peft model; the transport counts and perturbs."""

from __future__ import annotations

import copy

import pytest
import torch

from training.config import EncoderConfig, FederatedConfig, LoraSettings
from training.errors import TrainingConfigError
from training.models import DeviceModules, ServerModel, build_encoder, lora_parameters
from training.split import loss_function, monolithic_step, split_step
from training.transport import Transport


@pytest.fixture
def pair() -> tuple[DeviceModules, ServerModel]:
    torch.manual_seed(3)
    server = ServerModel(build_encoder(EncoderConfig()), LoraSettings(rank=4))
    with torch.no_grad():  # B starts at zero in peft; give the LoRA path real gradients
        for name, p in lora_parameters(server).items():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    return DeviceModules(6, 64, 5), server


@pytest.mark.parametrize("classes", [5, 0], ids=["classification", "regression"])
def test_split_step_equals_monolithic_peft(pair, classes: int):
    device, server = pair
    outputs = classes or 5
    device = DeviceModules(6, 64, outputs)
    twin_device, twin_server = copy.deepcopy(device), copy.deepcopy(server)
    x = torch.randn(8, 32, 6)
    y = torch.randint(0, 5, (8,)) if classes else torch.randn(8, 5)
    _, split_logits = split_step(device, server, Transport(), x, y, loss_function(classes))
    _, mono_logits = monolithic_step(twin_device, twin_server, x, y, loss_function(classes))
    assert (split_logits - mono_logits).abs().max() <= 1e-5
    lora, twin = lora_parameters(server), lora_parameters(twin_server)
    assert len(lora) == 8  # A and B of query and value in 2 layers
    for name in lora:
        assert lora[name].grad is not None and lora[name].grad.abs().sum() > 0
        assert (lora[name].grad - twin[name].grad).abs().max() <= 1e-5
    for p, q in zip(device.parameters(), twin_device.parameters(), strict=True):
        assert (p.grad - q.grad).abs().max() <= 1e-5
    # the encoder itself is frozen: only LoRA tensors train on the server
    frozen = [n for n, p in server.peft.named_parameters() if p.requires_grad and "lora_" not in n]
    assert frozen == []


def test_transport_counts_bytes_each_way(pair):
    device, server = pair
    x, y = torch.randn(4, 32, 6), torch.randint(0, 5, (4,))
    t32, t16 = Transport(), Transport(link_dtype=torch.float16)
    split_step(device, server, t32, x, y, loss_function(5))
    split_step(device, server, t16, x, y, loss_function(5))
    tokens, pooled = 4 * 32 * 64, 4 * 64
    assert t32.bytes_up == 4 * (tokens + pooled)  # tokens + gradient of the pooled vector
    assert t32.bytes_down == 4 * (pooled + tokens)  # pooled + gradient of the tokens
    assert t16.bytes_up * 2 == t32.bytes_up
    assert [m[1] for m in t32.messages] == ["tokens", "pooled", "pooled-gradient", "token-gradient"]


def test_uplink_noise_and_clipping_apply_to_activations_only():
    gen = torch.Generator().manual_seed(0)
    t = Transport(noise_std=0.5, clip_norm=1.0, generator=gen)
    x = torch.full((3, 4, 5), 10.0)
    received = t.up(x)
    assert received.shape == x.shape
    clipped_norm = x.flatten(1).norm(dim=1)[0]
    noise = received - x / clipped_norm  # what was sent was clipped to norm 1
    assert 0.3 < noise.std() < 0.7
    grads = t.up(x, "pooled-gradient", noisy=False)
    assert torch.equal(grads, x)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"devices_per_round": 11}, "devices_per_round"),
        ({"devices": 0}, "devices"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"device_ranks": (8, 0)}, "device_ranks"),
        ({"clip_norm": -1.0}, "clip_norm"),
    ],
    ids=["more-scheduled-than-exist", "no-devices", "negative-lr", "rank-zero", "negative-clip"],
)
def test_impossible_config_names_the_field(kwargs: dict, field: str):
    with pytest.raises(TrainingConfigError, match=rf"FederatedConfig\.{field}"):
        FederatedConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"rank": 0}, "rank"), ({"rank": -2}, "rank"), ({"target_modules": ()}, "target_modules")],
)
def test_impossible_lora_settings(kwargs: dict, field: str):
    with pytest.raises(TrainingConfigError, match=rf"LoraSettings\.{field}"):
        LoraSettings(**kwargs)


def test_encoder_config_checks_heads():
    with pytest.raises(TrainingConfigError, match=r"EncoderConfig\.hidden.*multiple of heads"):
        EncoderConfig(hidden=30, heads=4)
