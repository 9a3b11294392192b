"""Split federated LoRA rounds.

Each round the scheduled devices train locally through the split model (their
own copy of the device modules and, on the server, their own copy of the LoRA
adapters, started from the global ones); then the device modules and the
adapters are aggregated by data-size-weighted FedAvg.

Privacy (:mod:`training.privacy`): each device's tokens, and its pooled-vector
gradients when ``PrivacyConfig.gradient_clip_norm`` is set, cross a
:class:`Transport` that clips them per example and adds the channel noise set in
:attr:`FederatedTrainer.noise_std` / :attr:`~FederatedTrainer.gradient_noise_std`.
The device modules go up digitally (noise-free, outside epsilon), or, with
``PrivacyConfig.over_the_air_clip_norm``, over the air: each device's update is
clipped, the channel sums them (equal weights: aligned amplitudes) and one noise
draw of std :attr:`~FederatedTrainer.over_the_air_noise_std` lands on the sum.
Each round lists the uplinks that crossed noise-free (``outside_epsilon``).

Heterogeneous LoRA ranks: the server's adapters have the largest rank r_max; a
device of rank r uses only the first r rows of A and columns of B (the rest are
held at zero by a gradient mask). Aggregation pads every device's adapter to
r_max with zeros, averages, and each device truncates back to its rank when it
next trains. peft's scaling alpha / r_max applies to every device alike.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import FederatedConfig, LoraSettings
from .errors import TrainingConfigError
from .models import DeviceModules, ServerModel, lora_parameters
from .split import loss_function, split_step
from .tasks import Task, dirichlet_partition
from .threads import apply_threads
from .transport import Transport

__all__ = ["FederatedTrainer", "RoundResult", "fedavg", "over_the_air_mean", "rank_mask"]


@dataclass(frozen=True)
class RoundResult:
    """What one round did: who trained, its loss, the test metric, the bytes moved."""

    round: int
    devices: tuple[int, ...]
    train_loss: float
    test_loss: float
    test_accuracy: float | None  # None for regression tasks
    uplink_bytes: int
    downlink_bytes: int
    uplink_bytes_per_device: dict[int, int] = field(default_factory=dict)
    outside_epsilon: tuple[str, ...] = ()  # uplinks that crossed noise-free this round


def fedavg(
    states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]
) -> dict[str, torch.Tensor]:
    """Weighted average of state dicts with the same keys and shapes."""
    total = float(sum(weights))
    if total <= 0:
        raise TrainingConfigError("FedAvg needs positive weights")
    out: dict[str, torch.Tensor] = {}
    for key in states[0]:
        out[key] = torch.stack(
            [w / total * s[key] for s, w in zip(states, weights, strict=True)]
        ).sum(dim=0)
    return out


def over_the_air_mean(
    base: dict[str, torch.Tensor],
    states: Sequence[dict[str, torch.Tensor]],
    clip_norm: float,
    noise_std: float,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """``base`` plus the mean of the devices' updates (``state - base``), each clipped to
    L2 norm ``clip_norm`` over all its tensors, with one Gaussian draw of std
    ``noise_std`` per value on their sum: what an over-the-air sum delivers."""
    if not states:
        raise TrainingConfigError("over-the-air aggregation needs at least one device")
    keys = [k for k in base if base[k].is_floating_point()]
    total = torch.zeros(sum(base[k].numel() for k in keys))
    for state in states:
        update = torch.cat([(state[k] - base[k]).flatten() for k in keys])
        total += update * min(1.0, clip_norm / max(float(update.norm()), 1e-12))
    if noise_std > 0:
        total += noise_std * torch.randn(total.shape, generator=generator)
    mean = total / len(states)
    out, at = dict(base), 0
    for k in keys:
        n = base[k].numel()
        out[k] = base[k] + mean[at : at + n].view_as(base[k]).to(base[k].dtype)
        at += n
    return out


def rank_mask(name: str, tensor: torch.Tensor, rank: int) -> torch.Tensor:
    """1 where a rank-``rank`` adapter may be non-zero, 0 beyond it."""
    mask = torch.zeros_like(tensor)
    if "lora_A" in name:  # A: r_max x in
        mask[:rank] = 1
    else:  # B: out x r_max
        mask[:, :rank] = 1
    return mask


class FederatedTrainer:
    """Runs split federated LoRA rounds on a task, over ``config.devices`` devices.

    Building one sets this process's intra-op thread count (``torch.set_num_threads``,
    process-global, not restored) from ``config.threads`` and the model's size: one
    thread for a small model under "auto" (see :mod:`training.threads` for the
    measurements); :attr:`threads` is the count it set.
    """

    def __init__(
        self,
        task: Task,
        server: ServerModel,
        config: FederatedConfig,
        transport_noise_std: Sequence[float] | None = None,
    ) -> None:
        self.task = task
        self.config = config
        self.server = server
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        hidden = server.hidden
        outputs = task.num_classes if task.is_classification else int(task.y.shape[-1])
        self.global_device = DeviceModules(task.features, hidden, outputs)
        self.parameter_count = sum(p.numel() for p in server.parameters()) + sum(
            p.numel() for p in self.global_device.parameters()
        )
        self.threads = apply_threads(self.parameter_count, config.threads)
        self.loss_fn = loss_function(task.num_classes)
        self.partition = dirichlet_partition(
            task.y, config.devices, config.dirichlet_alpha, self.rng
        )
        r_max = server.lora.rank
        self.ranks = list(config.device_ranks or [r_max] * config.devices)
        if max(self.ranks) > r_max:
            raise TrainingConfigError(
                f"FederatedConfig.device_ranks: {max(self.ranks)} exceeds the server's "
                f"LoRA rank {r_max}"
            )
        # channel noise per device, set each round by the job (training.job)
        self.noise_std = list(transport_noise_std or [0.0] * config.devices)
        self.gradient_noise_std = [0.0] * config.devices
        self.over_the_air_noise_std = 0.0
        self.device_parameter_count = sum(p.numel() for p in self.global_device.parameters())
        self.global_lora = {k: v.detach().clone() for k, v in lora_parameters(server).items()}
        self.link_dtype = torch.float16 if config.link_dtype == "float16" else torch.float32
        self.round = 0

    @property
    def examples(self) -> list[int]:
        return [len(p) for p in self.partition]

    def _load_lora(self, state: dict[str, torch.Tensor], rank: int) -> None:
        with torch.no_grad():
            for name, param in lora_parameters(self.server).items():
                param.copy_(state[name] * rank_mask(name, param, rank))

    def train_device(
        self, k: int, transport: Transport
    ) -> tuple[DeviceModules, dict[str, torch.Tensor], float]:
        """Local training of device ``k``; returns its modules, adapter and mean loss."""
        cfg = self.config
        device = copy.deepcopy(self.global_device)
        self._load_lora(self.global_lora, self.ranks[k])
        lora = lora_parameters(self.server)
        trainable = [p for p in lora.values() if p.requires_grad]
        masks = {name: rank_mask(name, p, self.ranks[k]) for name, p in lora.items()}
        optimizer = torch.optim.Adam([*device.parameters(), *trainable], lr=cfg.learning_rate)
        idx = self.partition[k]
        losses = []
        for _ in range(cfg.local_steps):
            batch = self.rng.choice(idx, size=min(cfg.batch_size, len(idx)), replace=False)
            optimizer.zero_grad(set_to_none=True)
            loss, _ = split_step(
                device, self.server, transport, self.task.x[batch], self.task.y[batch], self.loss_fn
            )
            for name, param in lora.items():
                if param.grad is not None:
                    param.grad.mul_(masks[name])
            optimizer.step()
            losses.append(float(loss))
        # only what trained is uploaded for aggregation (B alone in b_only mode)
        adapter = {name: p.detach().clone() for name, p in lora.items() if p.requires_grad}
        return device, adapter, float(np.mean(losses))

    def run_round(self, devices: Sequence[int] | None = None) -> RoundResult:
        """Train the given devices (default: a random ``devices_per_round``) and aggregate."""
        cfg = self.config
        if devices is None:
            devices = sorted(
                self.rng.choice(cfg.devices, cfg.devices_per_round, replace=False).tolist()
            )
        if not devices:
            raise TrainingConfigError("a round needs at least one device")
        modules, adapters, losses, weights = [], [], [], []
        up = down = 0
        per_device: dict[int, int] = {}
        over_the_air = cfg.privacy.over_the_air_clip_norm > 0
        outside: set[str] = set()
        for k in devices:
            transport = Transport(
                link_dtype=self.link_dtype,
                noise_std=self.noise_std[k],
                clip_norm=cfg.clip_norm,
                gradient_clip_norm=cfg.privacy.gradient_clip_norm,
                gradient_noise_std=self.gradient_noise_std[k],
            )
            device, adapter, loss = self.train_device(k, transport)
            # the device uploads its trained modules for aggregation
            transport.count_upload(
                list(device.parameters()),
                "device-modules",
                noisy=over_the_air and self.over_the_air_noise_std > 0,
            )
            outside |= transport.outside_epsilon
            modules.append(device.state_dict())
            adapters.append(adapter)
            losses.append(loss)
            weights.append(float(len(self.partition[k])))
            up += transport.bytes_up
            down += transport.bytes_down
            per_device[k] = transport.bytes_up
        if over_the_air:
            base = self.global_device.state_dict()
            self.global_device.load_state_dict(
                over_the_air_mean(
                    base, modules, cfg.privacy.over_the_air_clip_norm, self.over_the_air_noise_std
                )
            )
        else:
            self.global_device.load_state_dict(fedavg(modules, weights))
        # zero padding is implicit (beyond its rank a device's adapter is held at zero)
        self.global_lora = {**self.global_lora, **fedavg(adapters, weights)}
        self._load_lora(self.global_lora, self.server.lora.rank)
        test_loss, accuracy = self.evaluate()
        self.round += 1
        return RoundResult(
            self.round - 1,
            tuple(devices),
            float(np.average(losses, weights=weights)),
            test_loss,
            accuracy,
            up,
            down,
            per_device,
            tuple(sorted(outside)),
        )

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float | None]:
        """Loss and accuracy (classification) of the global model on the test split."""
        self._load_lora(self.global_lora, self.server.lora.rank)
        logits = self.global_device.head(self.server(self.global_device.embed(self.task.x_test)))
        loss = float(self.loss_fn(logits, self.task.y_test))
        if not self.task.is_classification:
            return loss, None
        return loss, float((logits.argmax(dim=1) == self.task.y_test).float().mean())


def default_lora(rank: int = 8, b_only: bool = False) -> LoraSettings:
    return LoraSettings(rank=rank, alpha=2 * rank, b_only=b_only)
