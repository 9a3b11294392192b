"""The ``code`` check: the contracts on the chains are the ones this project built.

Every other check replays what the market's code did; none of it means anything if
the code at the market's address was changed (a node's ``anvil_setCode``, a swapped
deployment). So the runtime code at the root ledger's address and at every region
market's address, as of the audited block, must equal ``contracts/build``'s
artifact byte for byte (vyper's runtime code has no immutables to mask).

A market the root never registered is outside every checkpoint and every check, so
it is reported too (``registry``): a contract created on a region chain whose code is
RegionMarket's, or an address other than the registered market that took a settle.
"""

from __future__ import annotations

import hashlib

from ..chain import ChainBackend, load_artifact
from .calls import CallDecoder
from .read import ChainRead, RegionChain
from .result import Violation

__all__ = ["check_code", "check_unregistered"]


def _short(code: bytes) -> str:
    return f"{len(code)} bytes, sha256 {hashlib.sha256(code).hexdigest()[:16]}"


async def _one(
    backend: ChainBackend, read: ChainRead, address: str, artifact: str, found: list[Violation]
) -> None:
    expected = load_artifact(artifact).bytecode_runtime
    code = bytes(await backend.web3.eth.get_code(address, read.head))  # type: ignore[arg-type]
    if code != expected:
        found.append(
            Violation(
                "code",
                read.name,
                read.head,
                None,
                None,
                f"the code at {address} is not contracts/build/{artifact}.json's runtime "
                f"code ({_short(code)}; expected {_short(expected)})",
            )
        )


async def check_code(
    root_backend: ChainBackend,
    root: ChainRead,
    root_address: str,
    regions: list[RegionChain],
    found: list[Violation],
) -> None:
    """Add a ``code`` violation for each contract whose code is not the artifact's."""
    await _one(root_backend, root, root_address, "RootLedger", found)
    for region in regions:
        await _one(region.backend, region.read, region.market.address, "RegionMarket", found)
        await check_unregistered(region, found)


async def check_unregistered(region: RegionChain, found: list[Violation]) -> None:
    """``registry`` violations for markets on ``region``'s chain that the root never
    registered: created with RegionMarket's code, or sent a settlement that succeeded."""
    market_code = load_artifact("RegionMarket").bytecode_runtime
    selector = CallDecoder(region.market.binding).selector("settle")
    registered = region.market.address
    read, w3 = region.read, region.backend.web3
    reported: set[str] = set()

    def report(address: str, block: int, tx: str, how: str) -> None:
        if address not in reported:
            reported.add(address)
            found.append(
                Violation(
                    "registry",
                    read.name,
                    block,
                    tx,
                    None,
                    f"{how} at {address}, which the root never registered for region "
                    f"{region.id}: its leases are outside every checkpoint",
                )
            )

    for tx in read.txs:
        if tx.contract and tx.contract != registered and tx.status == 1:
            code = bytes(await w3.eth.get_code(tx.contract, read.head))  # type: ignore[arg-type]
            if code == market_code:
                report(tx.contract, tx.block, tx.hash, "a RegionMarket was deployed")
        elif tx.to and tx.to != registered and tx.status == 1 and tx.input[:4] == selector:
            report(tx.to, tx.block, tx.hash, "a settlement succeeded")
