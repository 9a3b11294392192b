"""Reading the chains: every block, transaction and log, and what the root says they are.

Nothing the simulation wrote is trusted. The RootLedger is found on the root
chain by its runtime bytecode (not by an address from a file), the region
markets and committees come from the root's ``RegionRegistered`` events, and
each region chain given is matched to its registration by chain id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from ..bindings import RegionMarket
from ..chain import ChainBackend, ContractBinding, Event, LedgerClient, dev_keys, load_artifact
from ..errors import ChainDataError
from .result import ChainRow, RegionRow, Violation

__all__ = [
    "BlockRead",
    "ChainRead",
    "RegionChain",
    "TxRead",
    "find_root_ledger",
    "hex0x",
    "read_chain",
    "read_regions",
]


def hex0x(b: bytes) -> str:
    return "0x" + bytes(b).hex()


@dataclass(frozen=True)
class BlockRead:
    hash: str
    timestamp: int


@dataclass(frozen=True)
class TxRead:
    """A mined transaction with the fields of its receipt the checks need."""

    block: int
    hash: str
    sender: str
    to: str | None
    input: bytes
    status: int
    contract: str | None  # the address it created, if any
    value: int = 0  # the wei it carried


@dataclass
class ChainRead:
    """Everything read from one chain, in chain order."""

    name: str
    chain_id: int
    head: int
    head_hash: str
    blocks: dict[int, BlockRead] = field(default_factory=dict)
    txs: list[TxRead] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)  # the logs of the bindings given

    def row(self) -> ChainRow:
        return ChainRow(
            name=self.name, chain_id=self.chain_id, head_block=self.head, head_hash=self.head_hash
        )


@dataclass(frozen=True)
class RegionChain:
    """A region as the root registered it, with its chain read and its market bound."""

    id: int
    name: str  # the chain's name in violations and payments: region-<id>
    label: str  # the name shown for the region (``name`` unless the caller gave one)
    market: RegionMarket
    backend: ChainBackend
    read: ChainRead
    members: tuple[str, ...]  # the committee at registration (rotations are in the read)
    threshold: int
    num_channels: int
    protected_mask: int
    epoch_length_s: int

    def row(self) -> RegionRow:
        return RegionRow(
            members=self.members,
            threshold=self.threshold,
            num_channels=self.num_channels,
            protected_mask=self.protected_mask,
            epoch_length_s=self.epoch_length_s,
            name=self.label,
        )


async def read_chain(
    backend: ChainBackend,
    name: str,
    bindings: list[ContractBinding],
    upto_block: int | None = None,
    upto_timestamp: int | None = None,
    at_least_block: int = -1,
) -> ChainRead:
    """Read blocks 0..head (or ``upto_block``); with ``upto_timestamp``, stop at the first
    later block, but never before ``at_least_block``."""
    w3 = backend.web3
    head = int(await w3.eth.block_number)
    if upto_block is not None:
        head = min(head, upto_block)
    decoders = {b.address: b for b in bindings}
    read = ChainRead(name, int(await w3.eth.chain_id), head, "")
    for n in range(head + 1):
        block = await w3.eth.get_block(n, full_transactions=True)
        if (
            upto_timestamp is not None
            and n > at_least_block
            and int(block["timestamp"]) > upto_timestamp
        ):
            read.head = n - 1
            break
        read.blocks[n] = BlockRead(hex0x(block["hash"]), int(block["timestamp"]))
        read.head_hash = hex0x(block["hash"])
        for tx in block["transactions"]:
            tx = cast(Any, tx)  # full transactions were asked for: dicts, not hashes
            receipt = await w3.eth.get_transaction_receipt(tx["hash"])
            read.txs.append(
                TxRead(
                    block=n,
                    hash=hex0x(tx["hash"]),
                    sender=tx["from"],
                    to=tx.get("to"),
                    input=bytes(tx.get("input", tx.get("data", b""))),
                    status=int(receipt["status"]),
                    contract=receipt.get("contractAddress"),
                    value=int(tx.get("value", 0)),
                )
            )
            for log in receipt["logs"]:
                binding = decoders.get(log["address"])
                if binding is not None and (event := binding.decode_log(log)) is not None:
                    read.events.append(event)
    return read


async def find_root_ledger(backend: ChainBackend) -> ContractBinding:
    """The first contract on ``backend`` whose runtime bytecode is the RootLedger's."""
    artifact = load_artifact("RootLedger")
    client = LedgerClient(backend, dev_keys()[0])
    w3 = backend.web3
    head = int(await w3.eth.block_number)
    for n in range(head + 1):
        block = await w3.eth.get_block(n)
        for tx_hash in block["transactions"]:
            receipt = await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            address = receipt.get("contractAddress")
            if address and bytes(await w3.eth.get_code(address)) == artifact.bytecode_runtime:
                return client.bind(artifact, address)
    raise ChainDataError("no RootLedger contract on the root chain")


async def read_regions(
    root: ChainRead,
    backends: Sequence[ChainBackend],
    upto_timestamp: int | None,
    labels: dict[int, str],
    found: list[Violation],
    warnings: list[Violation] | None = None,
) -> dict[int, RegionChain]:
    """Every region the root registered, read from the backend with its chain id.

    A registered region whose chain is not among ``backends`` is an ``integrity``
    violation (added to ``found``): its leases cannot be checked. A chain given that
    the root registered no region on is a ``registry`` warning (nothing on it counts).
    """
    registered: dict[int, dict[str, Any]] = {}
    for ev in root.events:
        if ev.name == "RegionRegistered":
            registered[int(ev.args["region"])] = dict(ev.args)
    by_chain_id = {int(await b.web3.eth.chain_id): b for b in backends}
    artifact = load_artifact("RegionMarket")
    regions: dict[int, RegionChain] = {}
    for region, reg in sorted(registered.items()):
        backend = by_chain_id.get(int(reg["shard_chain_id"]))
        name = f"region-{region}"
        if backend is None:
            found.append(
                Violation(
                    "integrity",
                    name,
                    None,
                    None,
                    None,
                    f"no chain with id {reg['shard_chain_id']} was given for this region",
                )
            )
            continue
        binding = LedgerClient(backend, dev_keys()[0]).bind(artifact, reg["market"])
        # as of the root's block: what the region's clock had reached then, and at
        # least every region block the root had checkpointed by then
        attested = max(
            (
                int(ev.args["block_number"])
                for ev in root.events
                if ev.name == "CheckpointPosted" and int(ev.args["region"]) == region
            ),
            default=-1,
        )
        regions[region] = RegionChain(
            id=region,
            name=name,
            label=labels.get(region, name),
            market=RegionMarket(binding, region, int(reg["shard_chain_id"])),
            backend=backend,
            read=await read_chain(
                backend, name, [binding], upto_timestamp=upto_timestamp, at_least_block=attested
            ),
            members=tuple(reg["members"]),
            threshold=int(reg["threshold"]),
            num_channels=int(await binding.call("num_channels")),
            protected_mask=int(await binding.call("protected_mask")),
            epoch_length_s=int(await binding.call("epoch_length_s")),
        )
    claimed = {int(reg["shard_chain_id"]) for reg in registered.values()}
    for chain_id in sorted(set(by_chain_id) - claimed):  # an idle node breaks no rule
        (found if warnings is None else warnings).append(
            Violation(
                "registry",
                f"chain-{chain_id}",
                None,
                None,
                None,
                f"a chain with id {chain_id} was given, but the root registered no region on "
                "it: nothing on it is checked or checkpointed",
            )
        )
    return regions
