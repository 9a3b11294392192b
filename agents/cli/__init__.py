"""The ``specledger`` command line.

    specledger contracts build [--check]
    specledger testnet up --regions N [--dir D] [--port P] [--json]
    specledger testnet down [--dir D]
    specledger bench ledger [--backend embedded|rpc] [--url URL] [--n N] [--json]
    specledger bench training [--json]
    specledger bench parallel [--world N] [--steps N] [--objective energy|latency|mixed] [--json]
    specledger plan POOL.toml [--objective energy|latency|mixed] [--json]
    specledger bench market [--agents N ...] [--json]
    specledger simulate SCENARIO --out DIR [--backend embedded|rpc] [--manifest testnet.json]
    specledger simulate [SCENARIO] --resume DIR
    specledger audit (RUN_DIR | --manifest testnet.json) [--json] [--at-block N] [--reindex]
                     [--export csv|parquet|json --to PATH] [--report PATH]
    specledger bench audit [--min-leases N] [--json]
    specledger sweep EXPERIMENT.toml --out DIR [--workers N | --scheduler ADDRESS]
    specledger bench sweep [--experiment EXPERIMENT.toml] [--repeats N] [--json]
    specledger demo [--out DIR] [--backend embedded|rpc] [--url URL]
    specledger compare SCENARIO --out DIR [--seeds 1,2,3] [--epochs N] [--json]

Every failure we foresee ends with one line on stderr that says what is wrong
and what to do, and a non-zero exit status.
"""

from __future__ import annotations

from . import (  # noqa: F401 - each registers its commands
    audit,
    bench,
    chain,
    compare,
    experiment,
    run,
)
from ._base import main

__all__ = ["main"]
