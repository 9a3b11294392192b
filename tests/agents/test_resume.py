"""One writer per run directory, and ``simulate --resume`` after a kill at any point."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents.errors import RunDirError
from agents.run import Simulation
from agents.rundir import RunLock, check_new, read_summary
from agents.scenario import load_scenario
from ledger.audit import run_audit

ROOT = Path(__file__).resolve().parents[2]

# the quickstart, smaller: 2 regions, 6 devices, 5 epochs, 3 rounds, every kind of failure
SMALL = """
seed = 11
epochs = 5
epoch_length_s = 3600
genesis_timestamp = 1893456000
checkpoint_every = 2

[[regions]]
id = 1
mechanism = "proportional_fair"
channels = 8
protected_channels = [7]

[[regions]]
id = 2
mechanism = "double_auction"
channels = 8

[participants]
satellite_operators = 1
terrestrial_operators = 2
edge_servers = 2
edge_devices = 6

[strategies]
coordinator = "adaptive"

[job]
task = "sensor"
model = "small"
rounds = 3
devices_per_round = 3
budget_eth = 5
lora_rank = 4

[failures]
device_dropout = 0.3
region_outage = { region = 2, from_epoch = 2, to_epoch = 3 }
agent_crashes = [ { agent = "terrestrial-1", epoch = 3 } ]
"""


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    return path


def specledger(*args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own; ``crash`` names where it kills itself
    (:mod:`tests.agents.crash_points`)."""
    command = ["-m", "agents.cli"] if crash is None else ["-m", "tests.agents.crash_points", crash]
    return subprocess.run(
        [sys.executable, *command, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal: exit status 1 and one line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    return lines[0]


def chain_rows(run: Path) -> dict[str, set[tuple[bytes, bytes]]]:
    """Every key and value of every chain file: equal rows are equal blocks and state."""
    rows = {}
    for path in sorted((run / "chains").glob("*.chain.sqlite")):
        db = sqlite3.connect(path)
        rows[path.name] = set(db.execute("SELECT k, v FROM kv"))
        db.close()
    return rows


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


# -- 7. one writer per run directory --------------------------------------------------------


def test_an_out_that_is_a_file_is_one_line(scenario: Path, tmp_path: Path):
    file = tmp_path / "taken"
    file.write_text("mine\n")
    assert "is a file, not a folder" in one_line(
        specledger("simulate", str(scenario), "--out", str(file))
    )
    assert file.read_text() == "mine\n"


def test_a_folder_with_other_files_is_refused_untouched(scenario: Path, tmp_path: Path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.txt").write_text("x")
    line = one_line(specledger("simulate", str(scenario), "--out", str(folder)))
    assert "is not empty (todo.txt) and holds no run" in line
    assert [p.name for p in folder.iterdir()] == ["todo.txt"]
    with pytest.raises(RunDirError, match="holds no run"):  # and the run itself refuses it
        check_new(folder)


def test_the_lock_keeps_a_second_process_out(tmp_path: Path):
    hold = (
        "import sys, time; from pathlib import Path; from agents.rundir import RunLock\n"
        "lock = RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
    )
    with subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with pytest.raises(RunDirError, match=rf"in use by another run \(pid {holder.pid}\)"):
                RunLock(tmp_path).acquire()
        finally:
            holder.kill()
    RunLock(tmp_path).acquire().release()  # the kernel let go of the dead holder's lock


@pytest.mark.multiproc
def test_a_second_simulate_on_the_same_out_is_refused_while_the_first_runs(
    scenario: Path, tmp_path: Path
):
    out = tmp_path / "run"
    simulate = ["simulate", str(scenario), "--out", str(out)]
    first = subprocess.Popen(  # it waits, holding the directory, after its first epoch
        [sys.executable, "-m", "tests.agents.crash_points", "stall:1", *simulate],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 240
        while (read_summary(out) or {}).get("epochs_run") != 1:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        line = one_line(specledger("simulate", str(scenario), "--out", str(out)))
        assert f"in use by another run (pid {first.pid})" in line
        assert "in use by another run" in one_line(specledger("simulate", "--resume", str(out)))
        with pytest.raises(RunDirError, match="in use"):  # the run's own claim, not a check
            check_new(out)
        assert first.poll() is None  # the first one was not disturbed
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # killed: its directory says so, and a new run there is pointed to --resume
    assert summary(out)["complete"] is False
    line = one_line(specledger("simulate", str(scenario), "--out", str(out)))
    assert f"holds an unfinished run: continue it with --resume {out}" in line


def test_resume_refuses_what_it_cannot_continue(scenario: Path, tmp_path: Path):
    nothing = tmp_path / "empty"
    nothing.mkdir()
    assert "holds no run to resume" in one_line(specledger("simulate", "--resume", str(nothing)))
    assert "holds no run to resume" in one_line(
        specledger("simulate", "--resume", str(tmp_path / "missing"))
    )
    done = tmp_path / "done"
    done.mkdir()
    (done / "scenario.toml").write_text(SMALL)
    (done / "summary.json").write_text(json.dumps({"complete": True}))
    assert "holds a complete run" in one_line(specledger("simulate", "--resume", str(done)))
    other = tmp_path / "other.toml"
    other.write_text(SMALL.replace("seed = 11", "seed = 12"))
    (done / "summary.json").write_text(json.dumps({"complete": False}))
    line = one_line(specledger("simulate", str(other), "--resume", str(done)))
    assert "is a run of another scenario" in line
    (done / "summary.json").write_text(json.dumps({"complete": False, "backend": "rpc"}))
    assert "only embedded runs can be resumed" in one_line(
        specledger("simulate", "--resume", str(done))
    )
    usage = specledger("simulate", str(scenario))
    assert usage.returncode == 2 and "give --out DIR for a new run, or --resume DIR" in usage.stderr
    assert not list(nothing.iterdir()) and sorted(p.name for p in done.iterdir()) == [
        "scenario.toml",
        "summary.json",
    ]


# -- 8. a killed run resumes to exactly the uninterrupted run -------------------------------

# each process of the run below kills itself at one of these points (the next one resumes)
KILLS = [
    ("join:2", 0),  # during set-up: no checkpoint yet, the resume sets up again
    ("close:2", 1),  # mid-epoch 1: settled, heartbeated and trained, leases not closed
    ("round:1", 2),  # epoch 2's round: its metrics line written, its confirmation not sent
    ("pointer:3", 2),  # while the checkpoint before epoch 3 is written
    ("saved:3", 3),  # between epochs 2 and 3, its checkpoint written
    ("history", 5),  # while finishing: history.sha256 written, the final summary not
]


@pytest.mark.slow
@pytest.mark.multiproc
async def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_run(
    scenario: Path, tmp_path: Path
):
    whole = tmp_path / "whole"
    expected = await Simulation(load_scenario(scenario), whole).run()
    assert expected["complete"] is True and not (whole / "resume").exists()

    out = tmp_path / "killed"
    for i, (point, epochs_done) in enumerate(KILLS):
        args = (
            ("simulate", str(scenario), "--out", str(out))
            if i == 0
            else ("simulate", "--resume", str(out))
        )
        killed = specledger(*args, crash=point)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
        said = summary(out)
        assert said["complete"] is False, point  # the directory says it was killed
        assert said["epochs_run"] == epochs_done, (point, said)
        if point == "round:1":  # an audit of the killed run passes, and the resume after
            assert (await run_audit(out)).ok  # it drops its now stale index
    with (out / "rounds.jsonl").open("a") as f:  # cut back to the checkpoint's length
        f.write('{"stray": "a line of an epoch that is run again"}\n')
    done = specledger("simulate", "--resume", str(out))
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["complete"] is True and got["resumes"] == len(KILLS)
    assert got == summary(out)

    # the same run, byte for byte: lease history, metrics, rounds and every chain's blocks
    for name in ("history.sha256", "metrics.csv", "rounds.jsonl"):
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
    assert got["history_sha256"] == expected["history_sha256"]
    ignore = {"wall_s", "time_s", "peak_rss_mib", "resumes"}  # measured, not produced
    assert {k: v for k, v in got.items() if k not in ignore} == {
        k: v for k, v in expected.items() if k not in ignore
    }
    assert chain_rows(out) == chain_rows(whole)
    assert not (out / "resume").exists()  # a complete run keeps no checkpoint
    assert (await run_audit(out)).ok
    assert "holds a complete run" in one_line(specledger("simulate", "--resume", str(out)))


@pytest.mark.slow
async def test_an_interrupted_run_resumes_in_process(scenario: Path, tmp_path: Path):
    whole = await Simulation(load_scenario(scenario), tmp_path / "whole").run()

    def interrupt(report) -> None:
        if report.epoch == 1:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    first = await Simulation(load_scenario(scenario), out, progress=interrupt).run()
    assert first["interrupted"] is True and first["complete"] is False
    assert summary(out)["complete"] is False and (out / "resume" / "latest.json").exists()
    with pytest.raises(RunDirError, match="unfinished run"):
        await Simulation(load_scenario(scenario), out).run()
    resumed = await Simulation(load_scenario(out / "scenario.toml"), out, resume=True).run()
    assert resumed["complete"] is True and resumed["resumes"] == 1
    assert resumed["history_sha256"] == whole["history_sha256"]
    assert resumed["scenario"] == whole["scenario"]  # the file it was started with
    for name in ("metrics.csv", "rounds.jsonl"):
        assert (out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    os.stat(out / "run.lock")  # the lock file stays; nobody holds it any more
    RunLock(out).acquire().release()
