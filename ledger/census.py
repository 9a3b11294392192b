"""What a run cost the chains: every transaction, by kind, read back from the chains.

Counting where transactions are sent would miss those a region's worker process
sends (rpc) and any sent by hand; the chains themselves hold every one. Kinds:

- ``join``: ``register``, ``deposit``, ``post_bond``, ``join``, and plain transfers of
  gas money on a region chain;
- ``settle``: ``settle`` (with the lifecycle steps it carries);
- ``lifecycle``: ``lifecycle`` batches and the one-step calls (``heartbeat``,
  ``complete``, ``relinquish``, ``report_default``, ``expire``);
- ``root``: every transaction on the root chain;
- ``other``: deployments, withdrawals, configuration changes.
"""

from __future__ import annotations

import resource
import sys
from typing import TYPE_CHECKING, Any

from .chain import ChainBackend
from .errors import NODE_ERRORS

if TYPE_CHECKING:
    from .tiered import TieredLedger

__all__ = ["KINDS", "chain_transactions", "kind_of", "peak_rss_mib"]

KINDS = ("join", "settle", "lifecycle", "root", "other")
_BY_FUNCTION = {
    **dict.fromkeys(("register", "deposit", "post_bond", "join"), "join"),
    "settle": "settle",
    **dict.fromkeys(
        ("lifecycle", "heartbeat", "complete", "relinquish", "report_default", "expire"),
        "lifecycle",
    ),
}


def kind_of(data: bytes, to: str | None, selectors: dict[bytes, str]) -> str:
    """The kind of one region-chain transaction."""
    if to is None:
        return "other"
    if not data:
        return "join"  # gas money for a participant
    return _BY_FUNCTION.get(selectors.get(bytes(data[:4]), ""), "other")


async def _scan(backend: ChainBackend, counts: dict[str, int], root: bool, sel: dict) -> None:  # type: ignore[type-arg]
    web3 = backend.web3
    head = int(await web3.eth.block_number)
    for number in range(1, head + 1):
        block = await web3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            assert not isinstance(tx, bytes), "asked for full transactions"
            # eth-tester names the calldata "data", nodes "input"
            data = bytes(tx.get("input") or tx.get("data") or b"")  # type: ignore[arg-type]
            kind = "root" if root else kind_of(data, tx.get("to"), sel)
            counts[kind] += 1


async def chain_transactions(ledger: TieredLedger) -> dict[str, Any]:
    """Every transaction on the ledger's chains since genesis, by kind. A chain that
    does not answer is left out of the counts and named in ``unread``."""
    counts: dict[str, Any] = dict.fromkeys(KINDS, 0)
    binding = next(iter(ledger.regions.values())).market.binding if ledger.regions else None
    selectors = {binding.selector(fn): fn for fn in _BY_FUNCTION} if binding else {}
    unread = []
    chains = [("root", ledger.root_backend, True)] + [
        (f"region-{r}", rt.backend, False) for r, rt in ledger.regions.items()
    ]
    for name, backend, root in chains:
        found = dict.fromkeys(KINDS, 0)  # a chain that stops answering midway adds nothing
        try:
            await _scan(backend, found, root, selectors)
        except NODE_ERRORS:
            unread.append(name)
            continue
        for kind, n in found.items():
            counts[kind] += n
    if unread:
        counts["unread"] = unread
    return counts


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (region worker processes, on
    rpc, are not in it)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
