"""Plan a pool's training step: data, sequence, tensor or pipeline parallelism.

For each mode and each degree ``p`` (how many of the pool's devices take part;
the fastest ``p`` devices are taken) the planner estimates one training step:

- latency: compute on the slowest taking part plus the messages on the critical
  path, each costing the link's latency plus its bytes over the slowest link's
  bandwidth (ring collectives: an all-reduce of ``n`` bytes sends
  ``2(p-1)/p·n`` per device, an all-gather or reduce-scatter ``(p-1)/p·n``);
  compute and messages do not overlap, as in :mod:`training.parallel.execute`;
- memory per device: weights, gradients, Adam's two states, and the
  activations backward keeps;
- bytes: sent by all devices together in one step;
- energy (:mod:`training.parallel.energy`): every device taking part draws its active
  power while it computes, its radio's base power while it sends, and its idle power for
  the rest of the step, and its radio spends energy on every bit it sends and receives.
  Device figures come from :mod:`training.parallel.devices`, each with its source.

The messages each mode sends are those :mod:`training.parallel.execute` sends:
data: one all-reduce of the gradients; sequence: an all-gather of keys and
values per block forward, a reduce-scatter of their gradients backward, and the
gradients' all-reduce; tensor: two all-reduces of the hidden state per block
forward and two backward (Megatron); pipeline (GPipe, ``m`` microbatches): the
cut's activations forward and their gradients backward, and a bubble of
``p - 1`` microbatch slots.

:func:`plan` picks the best for an objective and says why each other loses;
:func:`compare` puts the four side by side at one device count, as a testbed study does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..config import _check, _positive
from ..errors import TrainingError
from .energy import step_energy
from .shapes import MODES, Mode, TransformerShape

__all__ = [
    "DeviceProfile",
    "Estimate",
    "Objective",
    "Plan",
    "PoolCannotFit",
    "compare",
    "estimate",
    "plan",
]

Objective = Literal["energy", "latency", "mixed"]


class PoolCannotFit(TrainingError):
    """No plan fits the model on the pool; the message names the constraint that fails."""


@dataclass(frozen=True)
class DeviceProfile:
    """One trusted edge device with idle resources."""

    name: str
    flops_per_s: float  # sustained, on a transformer's matrix products
    memory_bytes: int  # free for training
    link_bytes_per_s: float
    link_latency_s: float
    idle_w: float
    active_w: float  # drawn while computing
    link_w: float = 1.0  # drawn while sending: the radio's base power
    tx_j_per_bit: float = 0.0  # the radio's energy per bit sent
    rx_j_per_bit: float = 0.0  # and per bit received

    def __post_init__(self) -> None:
        _positive(self, "flops_per_s", "memory_bytes", "link_bytes_per_s")
        _check(self, "link_latency_s", self.link_latency_s >= 0, "must be >= 0")
        _check(self, "idle_w", self.idle_w >= 0, "must be >= 0")
        _check(self, "active_w", self.active_w >= self.idle_w, "must be >= idle_w")
        _check(self, "link_w", self.link_w >= 0, "must be >= 0")
        _check(self, "tx_j_per_bit", self.tx_j_per_bit >= 0, "must be >= 0")
        _check(self, "rx_j_per_bit", self.rx_j_per_bit >= 0, "must be >= 0")


@dataclass(frozen=True)
class Estimate:
    """One mode at one degree, one training step."""

    mode: Mode
    devices: int
    step_s: float
    compute_s: float  # the slowest device's compute
    comm_s: float  # messages on the critical path
    memory_bytes: int  # the largest need of one device
    bytes_per_step: int  # sent by all devices together
    energy_j: float
    fits: bool
    why_not: str = ""  # set when it does not fit or cannot split this way
    link_bytes_per_s: float = 0.0  # the slowest link taking part: what the estimate assumes
    device_names: tuple[str, ...] = ()
    # energy_j by where it goes (all devices together)
    compute_energy_j: float = 0.0
    idle_energy_j: float = 0.0
    link_energy_j: float = 0.0  # radio base power while sending
    radio_energy_j: float = 0.0  # per bit sent and received


@dataclass(frozen=True)
class Plan:
    """The chosen estimate and, for each other mode, its best estimate and why it loses."""

    objective: Objective
    chosen: Estimate
    others: dict[str, Estimate] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


def _ring(p: int, n: float, all_reduce: bool) -> float:
    return (2 if all_reduce else 1) * (p - 1) / p * n


def _split_rule(mode: Mode, shape: TransformerShape, p: int) -> str:
    if mode == "data" and shape.batch % p:
        return f"batch {shape.batch} does not divide by {p}"
    if mode == "sequence" and shape.seq_len % p:
        return f"seq_len {shape.seq_len} does not divide by {p}"
    if mode == "tensor" and (shape.heads % p or shape.ffn % p):
        return f"heads {shape.heads} / ffn {shape.ffn} do not divide by {p}"
    if mode == "pipeline" and shape.layers < p:
        return f"{shape.layers} layers cannot fill {p} stages"
    return ""


def estimate(mode: Mode, shape: TransformerShape, devices: list[DeviceProfile]) -> Estimate:
    """Estimate one step of ``mode`` over ``devices`` (all of them take part)."""
    p = len(devices)
    if p < 1:
        raise TrainingError("estimate needs at least one device")
    flops = min(d.flops_per_s for d in devices)
    bandwidth = min(d.link_bytes_per_s for d in devices)
    alpha = max(d.link_latency_s for d in devices)
    memory = min(d.memory_bytes for d in devices)
    names = tuple(d.name for d in devices)
    b, s, L = shape.batch, shape.seq_len, shape.layers
    head = 3 * shape.head_forward_flops(b * s)
    state = shape.state_bytes
    act = shape.block_activation_bytes
    hidden_msg = shape.activation_message_bytes  # b·s·h values
    grads = shape.params * shape.bytes_per_value
    busy: list[float]  # compute seconds of each device
    sent_per_device: list[float]
    messages = 0  # sequential messages on the critical path
    if mode == "data":
        tokens = b // p * s
        busy = [(3 * L * shape.block_forward_flops(tokens, s) + head / p) / flops] * p
        need = state(shape.params) + L * act(tokens, s)
        sent_per_device = [_ring(p, grads, True)] * p
        messages = 2 * (p - 1) if p > 1 else 0
        comm = messages * alpha + sent_per_device[0] / bandwidth
    elif mode == "sequence":
        tokens = b * s // p
        busy = [(3 * L * shape.block_forward_flops(tokens, s) + head / p) / flops] * p
        need = state(shape.params) + L * act(tokens, s)
        kv = 2 * hidden_msg  # keys and values of the whole sequence
        # all-gather forward; gloo's reduce-scatter backward sends what an all-reduce
        # sends (measured: bench parallel), not the ring's (p-1)/p
        per_device = L * (_ring(p, kv, False) + _ring(p, kv, True)) + _ring(p, grads, True)
        sent_per_device = [per_device] * p
        messages = (L * 2 * (p - 1) + 2 * (p - 1)) if p > 1 else 0
        comm = messages * alpha + per_device / bandwidth
    elif mode == "tensor":
        tokens = b * s
        busy = [(3 * L * shape.block_forward_flops(tokens, s, ways=p) + head) / flops] * p
        sharded = L * shape.block_sharded_params(p) + shape.embedding_params + shape.head_params
        need = state(sharded) + L * act(tokens, s, ways=p)
        per_device = 4 * L * _ring(p, hidden_msg, True)
        sent_per_device = [per_device] * p
        messages = 4 * L * 2 * (p - 1) if p > 1 else 0
        comm = messages * alpha + per_device / bandwidth
    elif mode == "pipeline":
        m = shape.microbatches
        micro = b // m * s
        stages = [len(range(r * L // p, (r + 1) * L // p)) for r in range(p)]
        stage_flops = [3 * n * shape.block_forward_flops(micro, s) for n in stages]
        stage_flops[-1] += head / m
        slot = max(stage_flops) / flops  # one microbatch through the slowest stage
        busy = [m * f / flops for f in stage_flops]
        params = [
            n * shape.block_params
            + (shape.embedding_params if r == 0 else 0)
            + (shape.head_params if r == p - 1 else 0)
            for r, n in enumerate(stages)
        ]
        need = max(state(q) + n * act(b * s, s) for q, n in zip(params, stages, strict=True))
        cut = hidden_msg / m  # one microbatch's hidden state
        sent_per_device = [
            (m * cut if r < p - 1 else 0) + (m * cut if r > 0 else 0) for r in range(p)
        ]
        hop = alpha + cut / bandwidth if p > 1 else 0.0
        # GPipe: m + p - 1 slots forward and backward; every slot past the first stage
        # waits for one hop
        fill = (m + p - 1) * slot
        comm = 2 * (p - 1 + m - 1) * hop if p > 1 else 0.0
        compute_s = fill
    else:
        raise TrainingError(f"unknown parallelism {mode!r}: choose one of {', '.join(MODES)}")
    if mode != "pipeline":
        compute_s = max(busy)
    step = compute_s + comm
    energy = step_energy(devices, busy, sent_per_device, step)
    why = _split_rule(mode, shape, p) or ("" if need <= memory else _too_big(need, memory, p))
    return Estimate(
        mode=mode,
        devices=p,
        step_s=step,
        compute_s=compute_s,
        comm_s=comm,
        memory_bytes=int(need),
        bytes_per_step=int(sum(sent_per_device)),
        energy_j=energy.total_j,
        fits=not why,
        why_not=why,
        link_bytes_per_s=bandwidth,
        device_names=names,
        compute_energy_j=energy.compute_j,
        idle_energy_j=energy.idle_j,
        link_energy_j=energy.link_j,
        radio_energy_j=energy.radio_j,
    )


def _too_big(need: float, memory: int, p: int) -> str:
    smallest = "it has" if p == 1 else f"the smallest of the {p} taking part has"
    return f"needs {need / 2**30:.2f} GiB per device, {smallest} {memory / 2**30:.2f} GiB"


def _score(
    e: Estimate, objective: Objective, best_energy: float, best_step: float, w: float
) -> float:
    if objective == "energy":
        return e.energy_j
    if objective == "latency":
        return e.step_s
    return w * e.energy_j / best_energy + (1 - w) * e.step_s / best_step


def _fastest(pool: list[DeviceProfile]) -> list[DeviceProfile]:
    return sorted(pool, key=lambda d: (-d.flops_per_s, d.name))


def compare(
    shape: TransformerShape, pool: list[DeviceProfile], devices: int
) -> dict[Mode, Estimate]:
    """Each of the four modes on the same ``devices`` fastest devices of ``pool``, whether
    it fits or not: a testbed's side-by-side, where :func:`plan` shows each mode only at
    its own best count."""
    if not pool:
        raise PoolCannotFit("the pool is empty")
    if not 1 <= devices <= len(pool):
        raise TrainingError(f"devices = {devices}: the pool has {len(pool)}; give 1 to {len(pool)}")
    taking_part = _fastest(pool)[:devices]
    return {mode: estimate(mode, shape, taking_part) for mode in MODES}


def plan(
    shape: TransformerShape,
    pool: list[DeviceProfile],
    objective: Objective = "energy",
    *,
    energy_weight: float = 0.5,
    modes: tuple[Mode, ...] = MODES,
    devices: int | None = None,
) -> Plan:
    """The best mode and degree for ``objective`` ("mixed": ``energy_weight`` of energy
    relative to the best, the rest of latency relative to the best). ``devices`` fixes the
    degree; by default every degree from 1 to the pool's size is tried, on the fastest
    devices."""
    if not pool:
        raise PoolCannotFit("the pool is empty")
    if objective not in ("energy", "latency", "mixed"):
        raise TrainingError(f"unknown objective {objective!r}: energy, latency or mixed")
    if devices is not None and not 1 <= devices <= len(pool):
        raise TrainingError(f"devices = {devices}: the pool has {len(pool)}")
    if not 0 <= energy_weight <= 1:
        raise TrainingError(f"energy_weight = {energy_weight}: must be in [0, 1]")
    fastest = _fastest(pool)
    degrees = [devices] if devices else list(range(1, len(pool) + 1))
    candidates = {mode: [estimate(mode, shape, fastest[:p]) for p in degrees] for mode in modes}
    feasible = [e for es in candidates.values() for e in es if e.fits]
    if not feasible:
        raise PoolCannotFit(_no_fit(shape, pool, candidates))
    best_energy = min(e.energy_j for e in feasible)
    best_step = min(e.step_s for e in feasible)

    def score(e: Estimate) -> float:
        return _score(e, objective, best_energy, best_step, energy_weight)

    best = {
        mode: min((e for e in es if e.fits), key=score, default=None)
        for mode, es in candidates.items()
    }
    chosen = min((e for e in best.values() if e is not None), key=score)
    others: dict[str, Estimate] = {}
    reasons: dict[str, str] = {}
    for mode, es in candidates.items():
        if mode == chosen.mode:
            continue
        e = best[mode]
        if e is None:
            others[mode] = _closest(shape, es)
            reasons[mode] = f"does not fit: {others[mode].why_not}"
            continue
        others[mode] = e
        reasons[mode] = _why_loses(e, chosen, objective)
    return Plan(objective, chosen, others, reasons)


def _why_loses(e: Estimate, chosen: Estimate, objective: Objective) -> str:
    def more(a: float, b: float) -> str:
        return f"{(a / b - 1) * 100:+.1f}%" if b else f"{a:g} against none"

    parts = [
        f"step {e.step_s:.4g} s ({more(e.step_s, chosen.step_s)})",
        f"energy {e.energy_j:.4g} J ({more(e.energy_j, chosen.energy_j)})",
        f"traffic {e.bytes_per_step:,} B ({more(e.bytes_per_step, chosen.bytes_per_step)})",
    ]
    worst = []
    if e.step_s > chosen.step_s * 1.001:
        worst.append("too slow")
    if e.energy_j > chosen.energy_j * 1.001:
        worst.append("more energy")
    if e.bytes_per_step > chosen.bytes_per_step * 1.001:
        worst.append("too much traffic")
    lead = ", ".join(worst) or f"ties on {objective}"
    return f"{lead} on {e.devices} device(s): " + "; ".join(parts)


def _closest(shape: TransformerShape, es: list[Estimate]) -> Estimate:
    """The estimate that comes nearest to fitting: the split works, the least memory."""
    splits = [e for e in es if not _split_rule(e.mode, shape, e.devices)]
    return min(splits or es, key=lambda e: e.memory_bytes)


def _no_fit(
    shape: TransformerShape, pool: list[DeviceProfile], candidates: dict[Mode, list[Estimate]]
) -> str:
    lines = [
        f"no plan fits a model of {shape.params:,} parameters on {len(pool)} device(s) "
        f"(largest free memory {max(d.memory_bytes for d in pool) / 2**30:.2f} GiB):"
    ]
    for mode, es in candidates.items():
        e = _closest(shape, es)
        lines.append(f"  {mode}: at best {e.devices} device(s), {e.why_not}")
    return "\n".join(lines)
