"""Real execution of the four parallelisms with torch.distributed (gloo).

:func:`run_parallel` starts ``world`` local processes; each builds the same
reference model from the seed, takes its part, runs one checked step (its loss
share and gradients are kept for comparison with single-process training) and
then ``steps`` timed steps with Adam. Nothing is specific to localhost: a
worker joins by any torch.distributed ``init_method``, and
``python -m training.parallel.execute`` joins by the usual environment
(``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, as torchrun sets).

Bytes sent are measured, not computed: the growth of the process's ``wchar``
(``/proc/self/io``) over a step, which counts what gloo writes to its sockets.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..errors import TrainingError
from .model import Block, Reference, Wiring, shard_block
from .shapes import MODES, Mode, TransformerShape
from .wiring import SequenceWiring, TensorWiring

__all__ = ["MODES", "Mode", "ParallelRun", "ParallelRunFailed", "run_parallel", "step_batch"]


class ParallelRunFailed(TrainingError):
    """A worker process failed or did not finish; the message carries its error."""


def step_batch(shape: TransformerShape, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's tokens and labels, the same in every process."""
    g = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(0, shape.vocab, (shape.batch, shape.seq_len), generator=g)
    labels = torch.randint(0, shape.classes, (shape.batch, shape.seq_len), generator=g)
    return tokens, labels


@dataclass
class _Part:
    """One rank's share: the parameters it owns (reference names) and its step."""

    params: dict[str, torch.nn.Parameter]
    step: Callable[[], float]  # runs forward and backward, returns this rank's loss share


def _sync_gradients(params: dict[str, torch.nn.Parameter]) -> None:
    grads = [p.grad for p in params.values() if p.grad is not None]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _data_part(ref: Reference, tokens: torch.Tensor, labels: torch.Tensor) -> _Part:
    rank, world = dist.get_rank(), dist.get_world_size()
    share = tokens.shape[0] // world
    rows = slice(rank * share, (rank + 1) * share)
    params = dict(ref.named_parameters())

    def step() -> float:
        x = ref.embed_tokens(tokens[rows])
        for block in ref.layers:
            x = block(x, Wiring())
        loss = ref.loss_sum(x, labels[rows]) / labels.numel()
        loss.backward()
        _sync_gradients(params)
        return float(loss.detach())

    return _Part(params, step)


def _sequence_part(ref: Reference, tokens: torch.Tensor, labels: torch.Tensor) -> _Part:
    rank, world = dist.get_rank(), dist.get_world_size()
    share = tokens.shape[1] // world
    cols = slice(rank * share, (rank + 1) * share)
    params = dict(ref.named_parameters())
    wiring = SequenceWiring(world)

    def step() -> float:
        x = ref.embed_tokens(tokens[:, cols], first_position=rank * share)
        for block in ref.layers:
            x = block(x, wiring)
        loss = ref.loss_sum(x, labels[:, cols]) / labels.numel()
        loss.backward()
        _sync_gradients(params)
        return float(loss.detach())

    return _Part(params, step)


def _tensor_part(ref: Reference, tokens: torch.Tensor, labels: torch.Tensor) -> _Part:
    rank, world = dist.get_rank(), dist.get_world_size()
    blocks: list[Block] = list(ref.layers)  # type: ignore[arg-type]
    shards = torch.nn.ModuleList(shard_block(b, ref.shape, rank, world) for b in blocks)
    ref.layers = shards
    params = dict(ref.named_parameters())
    wiring = TensorWiring()

    def step() -> float:
        x = ref.embed_tokens(tokens)
        for block in shards:
            x = block(x, wiring)
        loss = ref.loss_sum(x, labels) / labels.numel()
        loss.backward()
        return float(loss.detach()) if rank == 0 else 0.0  # every rank computes the same loss

    return _Part(params, step)


def stage_layers(layers: int, rank: int, world: int) -> range:
    """Pipeline stage ``rank``'s blocks: contiguous, as even as the count allows."""
    return range(rank * layers // world, (rank + 1) * layers // world)


def _pipeline_part(ref: Reference, tokens: torch.Tensor, labels: torch.Tensor) -> _Part:
    rank, world = dist.get_rank(), dist.get_world_size()
    shape = ref.shape
    first, last = rank == 0, rank == world - 1
    mine: list[Block] = [ref.layers[i] for i in stage_layers(shape.layers, rank, world)]  # type: ignore[misc]
    params = {
        name: p
        for name, p in ref.named_parameters()
        if (name.startswith(("embed.", "pos.")) and first)
        or (name.startswith(("norm.", "head.")) and last)
        or (
            name.startswith("layers.")
            and int(name.split(".")[1]) in stage_layers(shape.layers, rank, world)
        )
    }
    micro = shape.batch // shape.microbatches
    cut = (micro, shape.seq_len, shape.hidden)

    def step() -> float:
        inputs: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        for j in range(shape.microbatches):  # GPipe: every forward, then every backward
            rows = slice(j * micro, (j + 1) * micro)
            if first:
                x = ref.embed_tokens(tokens[rows])
            else:
                x = torch.empty(cut)
                dist.recv(x, rank - 1)
                x.requires_grad_(True)
            inputs.append(x)
            y = x
            for block in mine:
                y = block(y, Wiring())
            if last:
                outputs.append(ref.loss_sum(y, labels[rows]) / labels.numel())
            else:
                dist.send(y.detach().contiguous(), rank + 1)
                outputs.append(y)
        for j in reversed(range(shape.microbatches)):
            if last:
                outputs[j].backward()
            else:
                grad = torch.empty(cut)
                dist.recv(grad, rank + 1)
                outputs[j].backward(grad)
            if not first:
                grad_in = inputs[j].grad
                assert grad_in is not None
                dist.send(grad_in.contiguous(), rank - 1)
        return float(sum(float(o.detach()) for o in outputs)) if last else 0.0

    return _Part(params, step)


_PARTS = {
    "data": _data_part,
    "sequence": _sequence_part,
    "tensor": _tensor_part,
    "pipeline": _pipeline_part,
}


# -- a worker ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerSpec:
    mode: Mode
    shape: TransformerShape
    steps: int = 3
    seed: int = 0
    threads: int = 1
    timeout_s: float = 120.0


def _bytes_written() -> int | None:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return None
    fields = dict(line.split(": ") for line in text.splitlines() if ": " in line)
    return int(fields["wchar"])


def check_layout(mode: Mode, shape: TransformerShape, world: int) -> None:
    """Raise TrainingError unless ``mode`` can split ``shape`` ``world`` ways."""
    rules = {
        "data": (shape.batch % world == 0, f"batch {shape.batch} must divide by {world}"),
        "sequence": (
            shape.seq_len % world == 0,
            f"seq_len {shape.seq_len} must divide by {world}",
        ),
        "tensor": (
            shape.heads % world == 0 and shape.ffn % world == 0,
            f"heads {shape.heads} and ffn {shape.ffn} must divide by {world}",
        ),
        "pipeline": (
            shape.layers >= world,
            f"{shape.layers} layers cannot fill {world} stages",
        ),
    }
    if mode not in rules:
        raise TrainingError(f"unknown parallelism {mode!r}: choose one of {', '.join(MODES)}")
    ok, why = rules[mode]
    if not ok:
        raise TrainingError(f"{mode} parallelism on {world} devices: {why}")


def worker(spec: WorkerSpec, out: Path) -> None:
    """Run in a process that has joined the group: the checked step, then the timed ones.
    Writes ``rank<r>.pt``: loss share, gradients (reference names), step wall and CPU
    seconds, bytes."""
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(spec.threads)
    ref = Reference(spec.shape, spec.seed)
    tokens, labels = step_batch(spec.shape, spec.seed)
    part = _PARTS[spec.mode](ref, tokens, labels)
    optimizer = torch.optim.Adam(part.params.values(), lr=1e-3)
    loss = part.step()
    grads = {n: p.grad.detach().clone() for n, p in part.params.items() if p.grad is not None}
    optimizer.step()
    times: dict[str, list[float]] = {"step_s": [], "cpu_s": []}
    sent: list[int] = []
    for _ in range(spec.steps):
        optimizer.zero_grad(set_to_none=True)
        dist.barrier()
        before, started, cpu = _bytes_written(), time.perf_counter(), time.process_time()
        part.step()
        optimizer.step()
        times["step_s"].append(time.perf_counter() - started)
        times["cpu_s"].append(time.process_time() - cpu)
        after = _bytes_written()
        if before is not None and after is not None:
            sent.append(after - before)
    record = {"loss": loss, "grads": grads, "bytes": sent, "world": world, **times}
    torch.save(record, out / f"rank{rank}.pt")


# -- the launcher -----------------------------------------------------------------------------
@dataclass
class ParallelRun:
    """What the ranks of one run measured."""

    mode: Mode
    world: int
    loss: float  # the step's loss, put together from the ranks' shares
    grads: list[dict[str, torch.Tensor]]  # per rank, reference names, this rank's part
    step_s: float  # median over timed steps of the slowest rank's step
    bytes_per_step: int | None  # median over timed steps of the bytes all ranks sent
    # raw: per timed step, "step_s" (the slowest rank's wall seconds), "cpu_s" (all
    # ranks' CPU seconds together) and "bytes" (all ranks', or None)
    raw: dict[str, Any] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(
    args: list[str],
    world: int,
    out: Path,
    what: str,
    master_addr: str,
    master_port: int | None,
    timeout_s: float,
) -> None:
    """Start ``world`` workers (``python -m training.parallel.execute``) and wait for all."""
    command = [
        sys.executable,
        "-m",
        "training.parallel.execute",
        *args,
        f"--out={out}",
        f"--timeout-s={timeout_s}",
    ]
    # the same env:// rendezvous torchrun uses; a remote pool sets these itself
    base = {
        **os.environ,
        "WORLD_SIZE": str(world),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port or _free_port()),
    }
    procs = []
    for r in range(world):
        with (out / f"rank{r}.log").open("w") as log:
            env = {**base, "RANK": str(r), "LOCAL_RANK": str(r)}
            procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout_s
    codes: list[int | None] = []
    for p in procs:
        try:
            codes.append(p.wait(max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            codes.append(None)
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    failed = [r for r, c in enumerate(codes) if c != 0]
    if failed:
        r = failed[0]
        tail = (out / f"rank{r}.log").read_text().strip().splitlines()[-15:]
        state = "did not finish in time" if codes[r] is None else f"exit status {codes[r]}"
        raise ParallelRunFailed(f"{what}, rank {r} of {world}: {state}\n" + "\n".join(tail))


@dataclass(frozen=True)
class LinkProbe:
    """The local link as gloo sees it between two processes."""

    latency_s: float  # half the round trip of a 4-byte message
    bytes_per_s: float  # a 4 MiB message, one way
    all_reduce_bytes_per_s: float  # what one device sends in a 4 MiB all-reduce, per second
    # each timed repeat's wall and CPU seconds (rank 0's): {"round_trip_4b_s",
    # "round_trip_4mib_s", "all_reduce_4mib_s"} -> {"wall": [...], "cpu": [...]}
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def probe_link(timeout_s: float = 120.0) -> LinkProbe:
    """Measure the link between two local worker processes (gloo send/recv)."""
    with tempfile.TemporaryDirectory(prefix="specledger-link-") as tmp:
        out = Path(tmp)
        _launch(["--probe"], 2, out, "link probe", "127.0.0.1", None, timeout_s)
        found = json.loads((out / "probe.json").read_text())
    return LinkProbe(**found)


def _probe(out: Path) -> None:
    rank = dist.get_rank()
    other = 1 - rank

    samples: dict[str, dict[str, list[float]]] = {}

    def timed(name: str, t: torch.Tensor, n: int, reduce: bool = False) -> float:
        """Seconds of one of ``n`` round trips (or all-reduces) of ``t``, recorded."""
        dist.barrier()
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            if reduce:
                dist.all_reduce(t)
            elif rank == 0:
                dist.send(t, other)
                dist.recv(t, other)
            else:
                dist.recv(t, other)
                dist.send(t, other)
        wall = (time.perf_counter() - started) / n
        got = samples.setdefault(name, {"wall": [], "cpu": []})
        got["wall"].append(wall)
        got["cpu"].append((time.process_time() - cpu) / n)
        return wall

    small, large = torch.zeros(1), torch.zeros(1 << 20)
    timed("warm-up", small, 10)
    latency = statistics.median(timed("round_trip_4b_s", small, 50) for _ in range(5)) / 2
    timed("warm-up", large, 2)
    one_way = statistics.median(timed("round_trip_4mib_s", large, 5) for _ in range(3)) / 2
    timed("warm-up", large, 1, reduce=True)
    all_reduce_s = statistics.median(
        timed("all_reduce_4mib_s", large, 5, reduce=True) for _ in range(3)
    )
    del samples["warm-up"]
    if rank == 0:
        found = {
            # a ring all-reduce sends 2(p-1)/p of the tensor from each device: here, all of it
            "all_reduce_bytes_per_s": large.numel() * 4 / all_reduce_s,
            "latency_s": latency,
            "bytes_per_s": large.numel() * 4 / max(one_way - latency, 1e-9),
            "samples": samples,
        }
        (out / "probe.json").write_text(json.dumps(found))


def run_parallel(
    mode: Mode,
    shape: TransformerShape,
    world: int = 2,
    *,
    steps: int = 3,
    seed: int = 0,
    threads: int | None = None,
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    timeout_s: float = 300.0,
) -> ParallelRun:
    """Run ``mode`` in ``world`` local processes and collect what they measured."""
    check_layout(mode, shape, world)
    threads = threads or max(1, (os.cpu_count() or 1) // world)
    args = [
        f"--mode={mode}",
        f"--steps={steps}",
        f"--seed={seed}",
        f"--threads={threads}",
        f"--shape={json.dumps(asdict(shape))}",
    ]
    with tempfile.TemporaryDirectory(prefix="specledger-parallel-") as tmp:
        out = Path(tmp)
        _launch(args, world, out, f"{mode} parallelism", master_addr, master_port, timeout_s)
        ranks = [torch.load(out / f"rank{r}.pt") for r in range(world)]
    if mode == "pipeline":
        loss = ranks[-1]["loss"]
    elif mode == "tensor":
        loss = ranks[0]["loss"]
    else:
        loss = sum(r["loss"] for r in ranks)
    per_step = [max(r["step_s"][i] for r in ranks) for i in range(steps)]
    per_step_cpu = [sum(r["cpu_s"][i] for r in ranks) for i in range(steps)]
    sent = (
        [sum(r["bytes"][i] for r in ranks) for i in range(steps)]
        if all(len(r["bytes"]) == steps for r in ranks)
        else None
    )
    return ParallelRun(
        mode,
        world,
        loss,
        [r["grads"] for r in ranks],
        statistics.median(per_step),
        int(statistics.median(sent)) if sent else None,
        raw={"step_s": per_step, "cpu_s": per_step_cpu, "bytes": sent},
    )


def main(argv: list[str] | None = None) -> None:
    """Join a group by env:// (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, as torchrun
    sets them) and run one mode; writes ``rank<r>.pt`` under ``--out``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--mode", choices=MODES)
    parser.add_argument("--probe", action="store_true", help="measure the link (2 ranks)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    parser.add_argument("--shape", type=json.loads, default="{}", help="TransformerShape JSON")
    args = parser.parse_args(argv)
    shape = TransformerShape(**args.shape)
    dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=args.timeout_s))
    try:
        if args.probe:
            _probe(args.out)
            return
        if args.mode is None:
            parser.error("--mode or --probe is required")
        check_layout(args.mode, shape, dist.get_world_size())
        args.out.mkdir(parents=True, exist_ok=True)
        spec = WorkerSpec(args.mode, shape, args.steps, args.seed, args.threads, args.timeout_s)
        worker(spec, args.out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
