"""``specledger demo``: the most complete end-to-end path until ``simulate`` exists.

It brings up a chain (persisted under ``--out`` on the embedded backend),
deploys the ``Probe`` contract, sends transactions at block times it chooses,
indexes their events as blocks are produced, closes the chain, reopens it
from disk and checks that every block hash and event came back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.chain import LedgerClient, LogIndex, dev_keys, open_backend
from ledger.errors import ChainDataError, ConfigError

GENESIS_TS = 1_767_225_600  # 2026-01-01T00:00:00Z: block times are ours, not the wall clock's


async def run_demo(
    out: Path,
    backend: str,
    url: str | None,
    echo: Callable[[str], None] = print,
    transactions: int = 20,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    if backend == "embedded":
        if (out / "demo.chain.sqlite").exists():
            raise ConfigError(f"{out} already holds a demo chain: choose another --out")
        options: dict[str, Any] = {
            "directory": out,
            "chain_name": "demo",
            "genesis_timestamp": GENESIS_TS,
        }
    else:
        options = {"url": url or "http://127.0.0.1:8545"}
    chain = await open_backend(backend, **options)
    client = LedgerClient(chain, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    index = LogIndex(client)
    index.watch(probe)
    start_ts = (await chain.web3.eth.get_block("latest"))["timestamp"]
    for i in range(transactions):
        await chain.set_next_block_timestamp(start_ts + 12 * (i + 1))
        await probe.transact("increment", i + 1, gas=100_000)
    await index.sync()
    head = await chain.web3.eth.get_block("latest")
    summary = {
        "backend": backend,
        "chain": chain.describe,
        "chain_id": await client.chain_id(),
        "contract": probe.address,
        "head_block": int(head["number"]),
        "head_hash": head["hash"].to_0x_hex(),
        "head_timestamp": int(head["timestamp"]),
        "events_indexed": len(index.of("Incremented")),
        "value": await probe.call("value"),
    }
    echo(f"{transactions} transactions mined on {chain.describe}")
    await chain.close()
    if backend == "embedded":
        reopened = await open_backend("embedded", directory=out, chain_name="demo")
        again = await reopened.web3.eth.get_block(summary["head_block"])
        again_index = LogIndex(LedgerClient(reopened, dev_keys()[0]))
        again_index.watch(LedgerClient(reopened, dev_keys()[0]).bind("Probe", probe.address))
        await again_index.sync()
        await reopened.close()
        if (
            again["hash"].to_0x_hex() != summary["head_hash"]
            or len(again_index.of("Incremented")) != summary["events_indexed"]
        ):
            raise ChainDataError(f"the chain reopened from {out} differs from the one written")
        summary["reopened_identical"] = True
        echo(
            f"reopened {out} from disk: head {summary['head_hash'][:18]}… and "
            f"{summary['events_indexed']} events intact"
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
