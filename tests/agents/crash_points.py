"""``specledger`` that kills itself with SIGKILL at a named point, for the resume tests.

    python -m tests.agents.crash_points POINT simulate ...

POINT is one of (N counts calls in this process, K is an epoch):

- ``join:N``: as the N-th region's ``join`` batches are sent (during set-up);
- ``close:N``: as the coordinator closes the leases of its N-th epoch here (mid-epoch:
  the epoch is settled, devices heartbeated, the round trained);
- ``round:N``: after the N-th round's metrics line is written, before its
  confirmation is sent to the root;
- ``pointer:K``: while the checkpoint before epoch K is written: its files are all
  there, the pointer to it is not;
- ``saved:K``: once the checkpoint before epoch K is written (between epochs);
- ``history``: after ``history.sha256`` is written, before the final summary;
- ``stall:K``: not a kill: once the checkpoint before epoch K is written, wait an hour
  (holding the run directory, for the tests of its lock);
- ``none``: never.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import agents.coordinator
import agents.recorder
import agents.resume
import ledger.tiered

calls: Counter[str] = Counter()


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _nth(name: str, n: int) -> bool:
    calls[name] += 1
    return calls[name] == n


def arm(point: str) -> None:
    name, _, arg = point.partition(":")
    at = int(arg) if arg else 0
    if name == "join":
        join = ledger.tiered.RegionRuntime.join

        async def dying_join(self: Any, *args: Any, **kwargs: Any) -> int:
            if _nth("join", at):
                die()
            return await join(self, *args, **kwargs)

        ledger.tiered.RegionRuntime.join = dying_join  # type: ignore[method-assign]
    elif name == "close":
        close = agents.coordinator.Coordinator.close_leases

        def dying_close(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _nth("close", at):
                die()
            return close(self, *args, **kwargs)

        agents.coordinator.Coordinator.close_leases = dying_close  # type: ignore[method-assign]
    elif name == "round":
        _after(agents.recorder.Recorder, "round_line", lambda *a: _nth("round", at))
    elif name == "pointer":
        write = agents.resume.write_json

        def dying_write(path: Any, data: Any) -> None:
            if path.name == "latest.json" and data["next_epoch"] == at:
                die()
            write(path, data)

        agents.resume.write_json = dying_write
    elif name == "saved":
        _after(agents.resume.Checkpoints, "save", lambda _self, epoch: epoch == at)
    elif name == "stall":
        _after(agents.resume.Checkpoints, "save", lambda _self, epoch: epoch == at, time.sleep)
    elif name == "history":
        _after(agents.recorder.Recorder, "write_history", lambda *a: True)
    elif name != "none":
        raise SystemExit(f"unknown crash point {point!r}")


def _after(
    cls: type, method: str, when: Callable[..., bool], then: Callable[..., Any] = die
) -> None:
    original = getattr(cls, method)

    def dying(self: Any, *args: Any) -> Any:
        result = original(self, *args)
        if when(self, *args):
            then(*([3600] if then is time.sleep else []))
        return result

    setattr(cls, method, dying)


if __name__ == "__main__":
    arm(sys.argv[1])
    from agents.cli import main

    main(sys.argv[2:], prog_name="specledger")
