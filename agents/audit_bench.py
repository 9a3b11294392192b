"""``specledger bench audit``: leases verified per second with every check, beside the
audit as it stood before the issue that added the state, code and calldata checks.

A generated run with at least ``--min-leases`` leases is audited MIN_REPEATS times by
today's code and, where the repository's history is at hand, MIN_REPEATS times by the
audit of commit :data:`BASELINE_COMMIT` (``git archive`` of its ``ledger/`` and
``contracts/`` into a temporary folder, run by the same interpreter). The two
alternate, each audit in a fresh process (no warm cache of an earlier audit or of the
run) with an index file of its own (each builds the index afresh, as a first audit
does), so the ratio compares audits measured side by side on the same machine load.

- ``audit_s`` (wall and CPU) and ``leases_verified_per_s``: spreads over today's audits,
  every check on (calldata replay through the contract model, events field by field,
  escrow after every block, storage and code at the head, registry);
- ``baseline``: the same figures for :data:`BASELINE_COMMIT`'s audit, or ``null`` with
  ``baseline_unavailable`` saying why (no git, a shallow clone without the commit);
- ``slowdown_vs_baseline``: the median of today's audit wall time over the baseline's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ledger.bench.stats import MIN_REPEATS, Timing

from .errors import AgentError

__all__ = ["BASELINE_COMMIT", "bench_audit"]

#: the audit before this issue's state, code and calldata-replay checks (the contract and
#: the chain format are unchanged since, so it reads today's runs)
BASELINE_COMMIT = "10a121a"
REPO = Path(__file__).resolve().parent.parent

AUDIT_TEMPLATE = """
seed = 9
epochs = {epochs}
epoch_length_s = 3600
genesis_timestamp = 1893456000
checkpoint_every = 5
[[regions]]
id = 1
mechanism = "proportional_fair"
channels = 32
[[regions]]
id = 2
mechanism = "second_price"
channels = 32
[[regions]]
id = 3
mechanism = "double_auction"
channels = 32
[participants]
satellite_operators = 1
terrestrial_operators = 6
edge_servers = 3
edge_devices = 60
[job]
rounds = {epochs}
devices_per_round = 24
budget_eth = 200
[failures]
device_dropout = 0.05
"""

# one audit in a fresh interpreter; prints its figures as JSON
_ONE_AUDIT = """
import asyncio, json, sys, time
from pathlib import Path
import ledger
from ledger.audit import run_audit
from ledger.chain import use_fast_keccak
use_fast_keccak()
wall, cpu = time.perf_counter(), time.process_time()
result = asyncio.run(run_audit(Path(sys.argv[1]), index=Path(sys.argv[2])))
print(json.dumps({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
                  "leases": len(result.leases), "leases_verified": result.leases_verified,
                  "ok": result.ok, "violations": [v.line() for v in result.violations][:5],
                  "code": str(Path(ledger.__file__).parent.parent)}))
"""


def _baseline_code(into: Path) -> str | None:
    """Unpack BASELINE_COMMIT's ledger/ and contracts/ into ``into``; None, or why not."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BASELINE_COMMIT, "ledger", "contracts"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        return (
            f"git archive {BASELINE_COMMIT} failed: {err.decode(errors='replace').strip() or exc}"
        )
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return None


def _one_audit(run_dir: Path, index: Path, code: Path | None) -> dict[str, Any]:
    """One full audit in a fresh process: today's code, or the code unpacked at ``code``."""
    env = None
    if code is not None:
        import os

        env = dict(os.environ, PYTHONPATH=str(code))
    out = subprocess.run(
        [sys.executable, "-c", _ONE_AUDIT, str(run_dir), str(index)],
        capture_output=True,
        text=True,
        env=env,
        cwd=code,  # `python -c` looks in its working directory first
        check=False,
    )
    if out.returncode != 0:
        raise AgentError(f"bench audit: an audit process failed: {out.stderr.strip()[-400:]}")
    audit = dict(json.loads(out.stdout.strip().splitlines()[-1]))
    if code is not None and Path(audit["code"]) != code:  # it must not import today's code
        raise AgentError(f"bench audit: the baseline ran the code at {audit['code']}")
    return audit


def _figures(audits: list[dict[str, Any]]) -> dict[str, Any]:
    found = {(a["leases"], a["leases_verified"], a["ok"]) for a in audits}
    if len(found) != 1:
        raise AgentError(f"bench audit: the audits of one run disagree: {sorted(found)}")
    leases, verified, ok = found.pop()
    timing = Timing()
    for a in audits:
        timing.add(a["wall_s"], a["cpu_s"])
    return {
        "leases": leases,
        "leases_verified": verified,
        "ok": ok,
        "audits": len(audits),
        "audit_s": timing.seconds(2),
        "leases_verified_per_s": timing.rate(verified),
        "violations": audits[0]["violations"],
    }


async def bench_audit(min_leases: int = 1000, baseline: bool = True) -> dict[str, Any]:
    """The figures above, for a generated run of at least ``min_leases`` leases."""
    from .run import Simulation
    from .scenario import load_scenario

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as name:
        tmp = Path(name)
        epochs = max(2, -(-min_leases // 30))  # about 36 leases per epoch were measured
        path = tmp / "audit.toml"
        path.write_text(AUDIT_TEMPLATE.format(epochs=epochs))
        run_dir = tmp / "run"
        summary = await Simulation(load_scenario(path), run_dir).run()
        if summary["leases"] < min_leases:
            raise AgentError(
                f"the generated run has {summary['leases']} leases, fewer than "
                f"the {min_leases} asked for"
            )
        old_code = tmp / "baseline"
        why_not = _baseline_code(old_code) if baseline else "not asked for (--no-baseline)"
        today, before = [], []
        for k in range(MIN_REPEATS):  # alternate: both see the same machine load
            today.append(
                await asyncio.to_thread(_one_audit, run_dir, tmp / f"today-{k}.sqlite", None)
            )
            if why_not is None:
                before.append(
                    await asyncio.to_thread(
                        _one_audit, run_dir, tmp / f"baseline-{k}.sqlite", old_code
                    )
                )
    result = _figures(today)
    result.update(run_wall_s=summary["wall_s"], epochs=epochs, baseline_commit=BASELINE_COMMIT)
    if before:
        base = _figures(before)
        result["baseline"] = base
        result["slowdown_vs_baseline"] = round(
            result["audit_s"]["wall_s"]["median"] / base["audit_s"]["wall_s"]["median"], 2
        )
    else:
        result["baseline"] = None
        result["baseline_unavailable"] = why_not
    return result
