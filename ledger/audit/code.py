"""The ``code`` check: the contracts on the chains are the ones this project built.

Every other check replays what the market's code did; none of it means anything if
the code at the market's address was changed (a node's ``anvil_setCode``, a swapped
deployment). So the runtime code at the root ledger's address and at every region
market's address, as of the audited block, must equal ``contracts/build``'s
artifact byte for byte (vyper's runtime code has no immutables to mask).
"""

from __future__ import annotations

import hashlib

from ..chain import ChainBackend, load_artifact
from .read import ChainRead, RegionChain
from .result import Violation

__all__ = ["check_code"]


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
