"""One writer per run directory, and what a directory must hold to be claimed or resumed.

A run holds an exclusive ``fcntl.flock`` on ``<dir>/run.lock`` from the moment it
claims its directory until it ends (the kernel drops it when the process dies,
even by SIGKILL), so a second ``simulate`` on the same directory is refused while
the first runs — taken before anything in the directory is read or written, so
two runs starting together cannot both pass the checks.

A directory holds a run when it has the run's ``scenario.toml`` or ``summary.json``;
the summary's ``complete`` says whether the run finished (``false`` while it runs,
and after it was killed or interrupted, until it is resumed and finishes).
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import IO, Any

from .errors import RunDirError

__all__ = [
    "LOCK_FILE",
    "SCENARIO_FILE",
    "SUMMARY_FILE",
    "RunLock",
    "check_new",
    "check_resumable",
    "preflight_new",
    "read_summary",
    "resume_scenario",
    "write_json",
]

LOCK_FILE = "run.lock"
SCENARIO_FILE = "scenario.toml"
SUMMARY_FILE = "summary.json"


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (a temporary file, then a rename):
    a reader, or a run killed while writing, sees the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def read_summary(out: Path) -> dict[str, Any] | None:
    """The run's ``summary.json``; None when there is none (or it is unreadable)."""
    try:
        data = json.loads((out / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def holds_run(out: Path) -> bool:
    return (out / SCENARIO_FILE).exists() or (out / SUMMARY_FILE).exists()


def is_complete(out: Path) -> bool:
    """Whether the run in ``out`` finished (a summary from before ``complete`` existed
    was only ever written at the end of a run)."""
    summary = read_summary(out)
    return summary is not None and bool(summary.get("complete", "history_sha256" in summary))


class RunLock:
    """The exclusive lock of one run directory, held until :meth:`release` (or exit)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        """Take the lock or refuse in one line naming the run that holds it."""
        f = open(self.out / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise RunDirError(
                f"{self.out} is in use by another run{who}: wait for it to end, "
                f"or choose another directory"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None


def _not_a_file(out: Path, flag: str) -> None:
    if out.exists() and not out.is_dir():
        raise RunDirError(f"{flag} {out} is a file, not a folder")


def _probe(out: Path) -> None:
    """Refuse now when another run holds ``out`` (creating nothing in it)."""
    if (out / LOCK_FILE).exists():
        RunLock(out).acquire().release()


def _refuse_new(out: Path) -> None:
    found = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
    if not found:
        return
    if not holds_run(out):
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise RunDirError(
            f"--out {out} is not empty ({shown}) and holds no run: choose a new or empty folder"
        )
    if is_complete(out):
        raise RunDirError(f"--out {out} already holds a run: choose another folder")
    raise RunDirError(
        f"--out {out} holds an unfinished run: continue it with --resume {out}, "
        f"or choose another folder"
    )


def preflight_new(out: Path) -> None:
    """What :func:`check_new` would refuse, said before anything is imported or written."""
    _not_a_file(out, "--out")
    if out.is_dir():
        _probe(out)
        _refuse_new(out)


def check_new(out: Path) -> RunLock:
    """Make and lock ``out`` for a new run; refuse a directory that holds anything."""
    _not_a_file(out, "--out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"--out {out}: cannot make the folder: {exc.strerror}") from None
    lock = RunLock(out).acquire()
    try:
        _refuse_new(out)
    except BaseException:
        lock.release()
        raise
    return lock


def _refuse_resume(out: Path, given: Path | None) -> Path:
    """The run's own scenario copy, when ``out`` holds a run that can be resumed (and
    ``given``, when the command names one, is that scenario byte for byte)."""
    _not_a_file(out, "--resume")
    if not out.is_dir() or not holds_run(out):
        raise RunDirError(f"--resume {out} holds no run to resume")
    copy = out / SCENARIO_FILE
    if not copy.exists():
        raise RunDirError(f"--resume {out} has no {SCENARIO_FILE}: it cannot be resumed")
    if given is not None:
        try:
            same = given.read_bytes() == copy.read_bytes()
        except OSError as exc:
            raise RunDirError(f"{given}: {exc.strerror}") from None
        if not same:
            raise RunDirError(
                f"--resume {out} is a run of another scenario: its {SCENARIO_FILE} differs "
                f"from {given}"
            )
    if is_complete(out):
        raise RunDirError(f"--resume {out} holds a complete run: there is nothing to resume")
    backend = (read_summary(out) or {}).get("backend", "embedded")
    if backend != "embedded":
        raise RunDirError(
            f"--resume {out} ran on the {backend} backend: only embedded runs can be "
            f"resumed (their chains are in the run directory)"
        )
    return copy


def resume_scenario(out: Path, given: Path | None) -> Path:
    """The scenario file to resume ``out`` with (the run's own copy); refuses at once what
    :func:`check_resumable` would refuse."""
    if out.is_dir():
        _probe(out)
    return _refuse_resume(out, given)


def check_resumable(out: Path, scenario: Path) -> tuple[RunLock, dict[str, Any]]:
    """Lock ``out`` to resume it with ``scenario``; returns the lock and the run's last
    summary. Refuses (one line) a directory without a run, a complete run, a run of
    another scenario and a run on the rpc backend."""
    _refuse_resume(out, scenario)
    lock = RunLock(out).acquire()
    try:
        _refuse_resume(out, scenario)  # again: it may have changed while we waited
    except BaseException:
        lock.release()
        raise
    return lock, read_summary(out) or {}
