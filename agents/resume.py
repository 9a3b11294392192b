"""What a run keeps so that ``simulate --resume`` continues it from its last complete epoch.

At the end of every complete epoch (and once after set-up) a run on the embedded
backend writes one checkpoint to ``<run>/resume/``:

- ``chains/``: a copy of every chain file as of that moment (sqlite3's online backup
  API; every block is already flushed, nothing else writes between epochs);
- ``state.pkl``: everything the simulation holds that the chains do not — its
  random generator, the sellers (strategies, devices' rest, satellites' signed
  passes, each trader's order nonce), the coordinator (strategy, round, budget,
  and the training job: LoRA and device weights, scheduler queue, fading
  channel, privacy accountants, generators), the epoch reports, the regions'
  settlement outcomes and torch's global generator. Ledger handles are not
  pickled but named (a trader by its key, region and nonce, the coordinator's root
  binding by its key, the ledger and its chains, markets and sequencers by where
  they sit) and found again on the reopened ledger; the task's data and the
  frozen encoder weights are rebuilt from the scenario, which gives them exactly;
- ``latest.json`` (written last, atomically): which folder is the checkpoint, the
  epoch to run next and how long ``metrics.csv`` and ``rounds.jsonl`` were.

Only the latest checkpoint is kept; a kill while one is written leaves the one
before. Resuming copies the chain files back, reopens the ledger, restores the
state, cuts the run's files back and runs the next epoch. A run killed before its
first checkpoint (during set-up) starts again from scratch in the same directory.
On the rpc backend the chains live in the nodes: no checkpoint is written and a
resume is refused. ``state.pkl`` is a pickle: resume only run directories you made
(an audit trusts nothing in a run directory; a resume trusts all of it).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

import torch

from ledger.bindings import RootLedger
from ledger.chain import ChainBackend, ChainFactory, EmbeddedChains, LedgerClient
from ledger.chain.factory import CHAIN_SUFFIX
from ledger.region import RegionSequencer, Trader
from ledger.tiered import LEDGER_FILE, TieredLedger

from .coordinator import Coordinator
from .errors import RunDirError
from .population import build_job
from .recorder import Recorder
from .rundir import write_json
from .scenario import Scenario


class Resumable(Protocol):
    """What a checkpoint needs of a run (:class:`~agents.run.Simulation` is one); named
    here so this module does not import the run it checkpoints."""

    scenario: Scenario
    out: Path
    chains: ChainFactory
    recorder: Recorder
    ledger: TieredLedger
    reports: list[Any]
    coordinator: Coordinator
    scenario_name: str


__all__ = ["RESUME_DIR", "Checkpoints"]

RESUME_DIR = "resume"
LATEST = "latest.json"
AUDIT_INDEX = "audit.sqlite"  # what `specledger audit` keeps in a run directory
#: what the simulation holds that is not state: given again, or rebuilt, on resume
NOT_STATE = frozenset(
    {"scenario", "out", "chains", "progress", "recorder", "ledger", "store", "interrupted"}
)
#: ledger handles that must never end up in a checkpoint (they are named, or rebuilt)
HANDLES = (LedgerClient, ChainBackend, TieredLedger, RegionSequencer)


class Checkpoints:
    """The resume checkpoints of one :class:`~agents.run.Simulation`."""

    def __init__(self, sim: Resumable, resume: bool) -> None:
        self.sim = sim
        self.resume = resume
        self.root = sim.out / RESUME_DIR
        self.enabled = isinstance(sim.chains, EmbeddedChains)  # rpc chains are not ours
        self.resumes = 0
        self.wall_before = 0.0
        self.started = time.perf_counter()
        self.cost: list[tuple[int, float]] = []  # (bytes, seconds) of each checkpoint

    # -- the start of a run -------------------------------------------------------------
    async def begin(self) -> int | None:
        """Claim the directory and bring the ledger up; returns the epoch to run next,
        or None when the run is new (or starts again) and must be set up."""
        sim, recorder = self.sim, self.sim.recorder
        if not self.resume:
            recorder.claim(sim.scenario.path)
        else:
            if not self.enabled:
                raise RunDirError(f"--resume {sim.out}: only runs on embedded chains resume")
            summary = recorder.claim_to_resume(sim.scenario.path)
            self.resumes = int(summary.get("resumes", 0)) + 1
            sim.scenario_name = str(summary.get("scenario", sim.scenario_name))
        try:
            (sim.out / AUDIT_INDEX).unlink(missing_ok=True)  # indexes chains about to change
            latest = self._latest()
            if latest is None:  # new, or killed before its first checkpoint
                if self.resume:
                    self._clear()
                recorder.write_summary(self.progress(0))
                sim.ledger = await TieredLedger.create(
                    sim.out, sim.scenario.regions, chains=sim.chains, seed=sim.scenario.seed
                )
                recorder.open_metrics()
                return None
            meta, folder = latest
            self._restore_chains(folder)
            sim.ledger = await TieredLedger.open(sim.out, chains=sim.chains)
            self._restore_state((folder / "state.pkl").read_bytes())
            recorder.reopen(meta["metrics_bytes"], meta["rounds_bytes"])
            self.wall_before = float(meta["wall_s"])
            recorder.write_summary(self.progress(int(meta["next_epoch"])))
            return int(meta["next_epoch"])
        except BaseException:
            recorder.release()
            raise

    def _latest(self) -> tuple[dict[str, Any], Path] | None:
        """The last checkpoint written whole, or None."""
        if not self.resume:
            return None
        try:
            meta = json.loads((self.root / LATEST).read_text())
        except (OSError, ValueError):
            return None
        folder = self.root / meta["folder"]
        if meta.get("scenario_sha256") != _sha256(self.sim.scenario.path):
            raise RunDirError(f"--resume {self.sim.out}: its checkpoint is of another scenario")
        return (meta, folder) if folder.is_dir() else None

    def _clear(self) -> None:
        """Everything but the scenario and the lock: the run starts again."""
        out = self.sim.out
        chains = self._chains_dir()
        if out.resolve() not in chains.resolve().parents:
            raise RunDirError(f"--resume {out}: its chains are outside it ({chains})")
        shutil.rmtree(chains, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
        for name in (LEDGER_FILE, "metrics.csv", "rounds.jsonl", "history.sha256"):
            (out / name).unlink(missing_ok=True)

    def _chains_dir(self) -> Path:
        assert isinstance(self.sim.chains, EmbeddedChains)
        return self.sim.chains.directory

    def _restore_chains(self, folder: Path) -> None:
        live = self._chains_dir()
        for stale in live.glob(f"*{CHAIN_SUFFIX}*"):  # the files, their -wal and -shm
            stale.unlink()
        for saved in sorted((folder / "chains").glob(f"*{CHAIN_SUFFIX}")):
            shutil.copyfile(saved, live / saved.name)

    # -- the end of an epoch --------------------------------------------------------------
    def save(self, next_epoch: int) -> None:
        """Checkpoint the run as it stands before ``next_epoch`` (embedded chains only),
        then say in ``summary.json`` how far it got."""
        sim = self.sim
        if self.enabled:
            began = time.perf_counter()
            self.root.mkdir(exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f"epoch-{next_epoch}-", dir=self.root))
            (folder / "chains").mkdir()
            assert isinstance(sim.chains, EmbeddedChains)
            for name in sim.chains.names():
                _backup(self._chains_dir() / f"{name}{CHAIN_SUFFIX}", folder / "chains")
            (folder / "state.pkl").write_bytes(self._dump())
            metrics_bytes, rounds_bytes = sim.recorder.sizes()
            size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            seconds = time.perf_counter() - began
            meta = {
                "folder": folder.name,
                "next_epoch": next_epoch,
                "metrics_bytes": metrics_bytes,
                "rounds_bytes": rounds_bytes,
                "scenario_sha256": _sha256(sim.scenario.path),
                "wall_s": round(self.wall_s(), 3),
                "bytes": size,
                "seconds": round(seconds, 4),
            }
            write_json(self.root / LATEST, meta)  # the checkpoint counts from here on
            for other in self.root.iterdir():
                if other.name not in (LATEST, folder.name):
                    shutil.rmtree(other) if other.is_dir() else other.unlink()
            self.cost.append((size, seconds))
        sim.recorder.write_summary(self.progress(next_epoch))

    def progress(self, epochs_run: int) -> dict[str, Any]:
        """``summary.json`` while the run goes on (and after it was killed)."""
        sim = self.sim
        rounds = [r for r in sim.reports if r.round_loss is not None]
        return {
            "scenario": sim.scenario_name,
            "backend": sim.chains.record(sim.out)["backend"],
            "seed": sim.scenario.seed,
            "complete": False,
            "interrupted": False,
            "epochs_run": epochs_run,
            "rounds": len(rounds),
            "resumes": self.resumes,
            "resumable": self.enabled,
        }

    def wall_s(self) -> float:
        """Seconds the run has taken, over every process that ran it up to a checkpoint."""
        return self.wall_before + time.perf_counter() - self.started

    def finish(self, complete: bool) -> None:
        """The run ended: a complete one needs no checkpoint; the directory is let go."""
        if complete:
            shutil.rmtree(self.root, ignore_errors=True)
        self.sim.recorder.release()

    # -- the simulation's state ------------------------------------------------------------
    def _dump(self) -> bytes:
        sim = self.sim
        state = {
            "simulation": {k: v for k, v in vars(sim).items() if k not in NOT_STATE},
            "outcomes": {r: rt.outcomes for r, rt in sim.ledger.regions.items()},
            "steps": {r: rt.sequencer.steps.pending() for r, rt in sim.ledger.regions.items()},
            "torch_rng": torch.get_rng_state(),
        }
        job = sim.coordinator.job
        named = {**_ledger_parts(sim.ledger), **(_rebuilt(job) if job is not None else {})}
        buffer = io.BytesIO()
        _Pickler(buffer, {id(obj): name for name, obj in named.items()}).dump(state)
        return buffer.getvalue()

    def _restore_state(self, blob: bytes) -> None:
        sim = self.sim
        found = {**_ledger_parts(sim.ledger), **_rebuilt(build_job(sim.scenario))}
        state = _Unpickler(io.BytesIO(blob), sim.ledger, found).load()
        for name, value in state["simulation"].items():
            setattr(sim, name, value)
        for r, outcomes in state["outcomes"].items():
            sim.ledger.regions[r].outcomes = outcomes
        for r, pending in state["steps"].items():  # handed in, not yet on the chain
            sim.ledger.regions[r].sequencer.steps.restore(pending)
        torch.set_rng_state(state["torch_rng"])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _backup(source: Path, folder: Path) -> None:
    """A consistent copy of one chain file, standalone (no -wal beside it)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(folder / source.name)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def _rebuilt(job: Any) -> dict[tuple[Any, ...], Any]:
    """What a checkpoint names instead of storing, as :func:`build_job` rebuilds it: the
    task's data and the encoder's frozen weights (LoRA's are state, even frozen)."""
    trainer = job.trainer
    found: dict[tuple[Any, ...], Any] = {("rebuilt", "task"): trainer.task}
    for name, param in trainer.server.named_parameters():
        if not param.requires_grad and "lora_" not in name:
            found[("rebuilt", name)] = param
    return found


def _ledger_parts(ledger: TieredLedger) -> dict[tuple[Any, ...], Any]:
    """The ledger and its parts by name: what state refers to them by is their name, so
    that it refers to the reopened ledger's after a resume."""
    parts: dict[tuple[Any, ...], Any] = {
        ("ledger",): ledger,
        ("ledger", "root"): ledger.root,
        ("ledger", "root_backend"): ledger.root_backend,
    }
    for r, rt in ledger.regions.items():
        parts[("region", r)] = rt
        for attr in ("backend", "client", "market", "sequencer"):
            parts[("region", r, attr)] = getattr(rt, attr)
    return parts


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, names: dict[int, tuple[Any, ...]]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.names = names  # id -> name of what is not stored but found again

    def persistent_id(self, obj: Any) -> Any:
        name = self.names.get(id(obj))
        if name is not None:
            return name
        if isinstance(obj, Trader):  # its own client and market binding, and its nonce
            return ("trader", obj.shared.region_id, obj.key, obj.nonce)
        if isinstance(obj, RootLedger):  # the root seen by another account
            return ("root", bytes(obj.binding.client.account.key))
        if isinstance(obj, HANDLES):
            raise RunDirError(f"a checkpoint cannot hold a {type(obj).__name__}")
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(
        self, file: io.BytesIO, ledger: TieredLedger, found: dict[tuple[Any, ...], Any]
    ) -> None:
        super().__init__(file)
        self.ledger = ledger
        self.found = found
        self.made: dict[tuple[Any, ...], Any] = {}  # one handle per name, shared as before

    def persistent_load(self, pid: Any) -> Any:
        pid = tuple(pid)
        if pid in self.found:
            return self.found[pid]
        kind, *rest = pid
        key = (kind, *rest[:2])
        if key not in self.made:
            if kind == "trader":
                region, private_key, nonce = rest
                rt = self.ledger.regions[region]
                trader = Trader(private_key, rt.market, rt.client)
                trader.nonce = nonce
                self.made[key] = trader
            else:
                client = LedgerClient(self.ledger.root_backend, rest[0])
                self.made[key] = self.ledger.root.as_client(client)
        return self.made[key]
