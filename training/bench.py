"""``specledger bench training``: the split model's cost against the monolithic one.

Fixed configuration (the issue's): the sensor task; an encoder with
all-MiniLM-L6-v2's dimensions (6 layers, hidden 384, 12 heads, intermediate
1536; random weights built from the config, so nothing is downloaded); 10
devices; 5 local steps of batch 16 at sequence length 32; LoRA rank 8; the
cut layer sent in float16 (accuracy holds: the accuracy test runs on float16).

Every timed figure is a spread over at least MIN_REPEATS repeats (``{"median",
"min", "max", "n"}``, :mod:`training.timing`), wall seconds beside CPU seconds:

- ``split_step_s`` and ``monolithic_step_s``: one split training step and one step of
  the same monolithic peft model, same batch, interleaved in the same run;
- ``split_step_ratio``: split over monolithic wall time of each interleaved pair;
- ``round_s``: one whole federated round of the job below (``round_test_accuracy``
  and the bytes are the first round's);
- ``threads``: the intra-op threads all of it ran on (:mod:`training.threads`'s
  rule for this model: torch's default, the model being large);
- ``equivalence_max_abs_diff``: largest difference of logits and LoRA gradients
  between one split and one monolithic step (float32 link);
- ``uplink_bytes_per_round``: everything the 10 devices send up in one round:
  cut-layer tokens, gradients of the pooled vectors, and their device modules
  for aggregation (the LoRA adapters live on the server and never cross);
- ``fedavg_full_bytes_per_round``: what 10 devices would upload in one round of
  full-model FedAvg of the same model (every parameter, float32);
- ``bytes_ratio``: the first over the second.
- ``privacy``: accuracy at target epsilon 8 and 1 beside the noise-free control, the
  epsilon reached and the received SNR it cost (:mod:`training.privacy_bench`).
- ``scheduler``: the per-round delay cap and the Lyapunov scheduler's optimality gap
  and backlog per V against a brute-force optimum (:mod:`training.scheduler_bench`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .config import MINILM_DIMENSIONS, FederatedConfig, LoraSettings, describe
from .federated import FederatedTrainer
from .models import DeviceModules, ServerModel, build_encoder, lora_parameters
from .privacy_bench import bench_privacy
from .scheduler_bench import bench_scheduler
from .split import loss_function, monolithic_step, split_step
from .tasks import sensor_task
from .threads import apply_threads
from .timing import MIN_REPEATS, Timing, spread
from .transport import Transport

__all__ = ["bench_training"]


def bench_training(repeats: int = 10) -> dict[str, Any]:
    """The figures above; ``repeats`` (at least MIN_REPEATS) timed steps of each kind."""
    repeats = max(repeats, MIN_REPEATS)
    torch.manual_seed(0)
    task = sensor_task(examples=2000, test=200, window=32, seed=0)
    lora = LoraSettings(rank=8, alpha=16)
    config = FederatedConfig(
        devices=10, devices_per_round=10, local_steps=5, batch_size=16, link_dtype="float16", seed=0
    )
    server = ServerModel(build_encoder(MINILM_DIMENSIONS), lora)
    with torch.no_grad():
        for name, p in lora_parameters(server).items():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    device = DeviceModules(task.features, MINILM_DIMENSIONS.hidden, task.num_classes)
    params = [*server.parameters(), *device.parameters()]
    threads = apply_threads(sum(p.numel() for p in params))  # as the trainer below will
    loss_fn = loss_function(task.num_classes)
    x, y = task.x[:16], task.y[:16]

    # equivalence on a float32 link
    twin_device, twin_server = copy.deepcopy(device), copy.deepcopy(server)
    _, split_logits = split_step(device, server, Transport(), x, y, loss_fn)
    _, mono_logits = monolithic_step(twin_device, twin_server, x, y, loss_fn)
    diff = float((split_logits - mono_logits).abs().max())
    twin = lora_parameters(twin_server)
    for name, p in lora_parameters(server).items():
        twin_grad = twin[name].grad
        assert p.grad is not None and twin_grad is not None
        diff = max(diff, float((p.grad - twin_grad).abs().max()))

    # step time, interleaved so both see the same machine state
    def split_once() -> None:
        device.zero_grad(set_to_none=True)
        server.zero_grad(set_to_none=True)
        split_step(device, server, Transport(link_dtype=torch.float16), x, y, loss_fn)

    def mono_once() -> None:
        twin_device.zero_grad(set_to_none=True)
        twin_server.zero_grad(set_to_none=True)
        monolithic_step(twin_device, twin_server, x, y, loss_fn)

    for _ in range(2):
        split_once()
        mono_once()
    split_t, mono_t = Timing(), Timing()
    for _ in range(repeats):
        split_t.measure(split_once)
        mono_t.measure(mono_once)
    ratios = [s / m for s, m in zip(split_t.wall, mono_t.wall, strict=True)]

    # real rounds, timed; the first one's bytes and accuracy
    trainer = FederatedTrainer(task, ServerModel(build_encoder(MINILM_DIMENSIONS), lora), config)
    round_t = Timing()
    result, *_ = [round_t.measure(trainer.run_round) for _ in range(MIN_REPEATS)]
    full_params = sum(p.numel() for p in trainer.global_device.parameters()) + sum(
        p.numel() for n, p in trainer.server.peft.named_parameters() if "lora_" not in n
    )
    full_bytes = config.devices_per_round * full_params * 4
    return {
        "split_step_ratio": spread(ratios, 3),
        "split_step_s": split_t.seconds(),
        "monolithic_step_s": mono_t.seconds(),
        "equivalence_max_abs_diff": diff,
        "uplink_bytes_per_round": result.uplink_bytes,
        "fedavg_full_bytes_per_round": full_bytes,
        "bytes_ratio": round(result.uplink_bytes / full_bytes, 4),
        "round_s": round_t.seconds(3),
        "round_test_accuracy": result.test_accuracy,
        "link_dtype": config.link_dtype,
        "threads": threads,
        # accuracy at strict privacy budgets with power control (training.privacy_bench)
        "privacy": bench_privacy(),
        # the per-round cap and the O(1/V) gap to a brute-force optimum
        "scheduler": bench_scheduler(),
        "config": {
            "task": "sensor",
            "encoder": describe(MINILM_DIMENSIONS),
            "lora": {
                "rank": lora.rank,
                "alpha": lora.alpha,
                "target_modules": list(lora.target_modules),
            },
            "devices": config.devices,
            "local_steps": config.local_steps,
            "batch_size": config.batch_size,
            "sequence_length": task.window,
        },
    }
