"""Audit lease histories from the chains alone.

Nothing the simulation wrote is trusted: the RootLedger is found on the root
chain by its runtime bytecode, the region markets and committees come from the
root's ``RegionRegistered`` events, and every region chain is matched to its
registration by chain id. Every block, transaction and log is read; every
settlement's calldata is decoded and its committee and EIP-712 signatures are
verified again.

Checks (each violation names the chain, block, transaction and lease):

``overlap``        two spectrum leases share a channel x slot in a region
``protected``      a lease touches the region's protected channels
``capacity``       a compute offer sold beyond its capacity
``quorum``         a settlement without t distinct committee signatures over its result
``signature``      a debit not authorised by the payer's own bid signature (or an
                   offer not signed by its seller)
``escrow``         after a settlement, the market's balance != free + locked + bonds
                   rebuilt from its events
``checkpoint``     a root checkpoint whose block hash or lease-state root does not
                   match the shard's own history
``cross``          a committed cross-region lease missing in a region, or an aborted
                   one active somewhere
``integrity``      a persisted chain file that does not verify (header hashes, parent
                   links, transaction and receipt roots), or an edited audit index
``metrics``        a training round whose metrics file does not hash to the root's record

The index (SQLite, ``audit.sqlite``), schema::

    chains(name TEXT, chain_id INT, head_block INT, head_hash TEXT)
    leases(region INT, lease_id TEXT, epoch INT, kind INT, seller TEXT, buyer TEXT,
           nonce INT, first INT, units INT, start INT, "end" INT, price_wei TEXT,
           offer_hash TEXT, bid_digest TEXT, settle_block INT, settle_tx TEXT,
           state TEXT, state_block INT, state_tx TEXT)
    lease_events(region INT, lease_id TEXT, block INT, tx TEXT, event TEXT, detail TEXT)
    payments(chain TEXT, block INT, tx TEXT, who TEXT, amount_wei TEXT, kind TEXT)
    settlements(region INT, epoch INT, block INT, tx TEXT, orderbook_root TEXT,
                leases INT, total_price_wei TEXT, signers INT)
    checkpoints(region INT, idx INT, block_number INT, block_hash TEXT, lease_root TEXT,
                root_block INT, root_tx TEXT)
    rounds(job INT, round INT, block INT, tx TEXT, update_hash TEXT, metrics_hash TEXT,
           metrics TEXT)
    violations(check_name TEXT, chain TEXT, block INT, tx TEXT, lease TEXT, detail TEXT)
    meta(key TEXT PRIMARY KEY, value TEXT)   -- 'digest': sha256 of the data tables

Amounts are decimal strings (wei exceed SQLite integers); hashes are 0x-hex.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from eth_abi import decode as abi_decode
from eth_utils import (
    function_signature_to_4byte_selector,
    get_abi_input_types,
)

from ..bindings import RegionMarket
from ..chain import (
    ChainBackend,
    ContractBinding,
    LedgerClient,
    dev_keys,
    load_artifact,
    open_backend,
)
from ..chain.testnet import load_manifest
from ..eip712 import Sig, recover
from ..errors import ChainDataError, ConfigError
from ..merkle import LeaseTree
from ..records import Bid, LeaseRecord, LeaseState, Offer, chain_leases_hash

__all__ = ["Audit", "AuditResult", "Violation", "export_leases", "run_audit", "write_index"]

_STATES = {
    "LeaseCompleted": LeaseState.COMPLETED,
    "LeaseRelinquished": LeaseState.RELINQUISHED,
    "LeaseDefaulted": LeaseState.DEFAULTED,
    "LeaseExpired": LeaseState.EXPIRED,
}


@dataclass(frozen=True)
class Violation:
    check: str
    chain: str
    block: int | None
    tx: str | None
    lease: str | None
    detail: str

    def line(self) -> str:
        where = ", ".join(
            x
            for x in (
                self.chain,
                f"block {self.block}" if self.block is not None else "",
                f"tx {self.tx}" if self.tx else "",
                f"lease {self.lease}" if self.lease else "",
            )
            if x
        )
        return f"[{self.check}] {where}: {self.detail}"


@dataclass
class ChainRead:
    """Everything read from one chain."""

    name: str
    chain_id: int
    head: int
    head_hash: str
    blocks: dict[int, dict[str, Any]] = field(default_factory=dict)
    txs: list[dict[str, Any]] = field(default_factory=list)  # with receipt fields
    events: list[Any] = field(default_factory=list)  # ledger.client.Event, chain order


@dataclass
class AuditResult:
    violations: list[Violation]
    leases: list[dict[str, Any]]
    settlements: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]]
    rounds: list[dict[str, Any]]
    regions: dict[int, dict[str, Any]]
    chains: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    lease_events: list[dict[str, Any]]
    leases_verified: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


# -- reading chains ----------------------------------------------------------------------------
async def _read(
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
        read.blocks[n] = {"hash": _hex(block["hash"]), "timestamp": int(block["timestamp"])}
        read.head_hash = _hex(block["hash"])
        for tx in block["transactions"]:
            tx = cast(Any, tx)  # full transactions were asked for: dicts, not hashes
            receipt = await w3.eth.get_transaction_receipt(tx["hash"])
            read.txs.append(
                {
                    "block": n,
                    "hash": _hex(tx["hash"]),
                    "from": tx["from"],
                    "to": tx.get("to"),
                    "input": bytes(tx.get("input", tx.get("data", b""))),
                    "status": int(receipt["status"]),
                    "contract": receipt.get("contractAddress"),
                }
            )
            for log in receipt["logs"]:
                binding = decoders.get(log["address"])
                if binding is not None and (event := binding.decode_log(log)) is not None:
                    read.events.append(event)
    return read


def _decoder(binding: ContractBinding, fn: str) -> tuple[bytes, list[str]]:
    abi = next(a for a in binding.artifact.abi if a.get("name") == fn)
    types = list(get_abi_input_types(abi))  # type: ignore[arg-type]
    return function_signature_to_4byte_selector(f"{fn}({','.join(types)})"), types


# -- integrity of persisted chains ----------------------------------------------------------------
def embedded_integrity(backend: ChainBackend, name: str) -> list[Violation]:
    """Re-derive every stored block: header hash, parent link, transaction and receipt roots."""
    from eth.db.trie import make_trie_root_and_nodes

    chain = backend.tester.backend.chain  # type: ignore[attr-defined]
    db = chain.chaindb
    found = []
    try:
        head = chain.get_canonical_head().block_number
    except Exception as exc:  # a damaged head is itself the finding
        return [Violation("integrity", name, None, None, None, f"no readable head: {exc!r}")]
    parent = None
    for n in range(head + 1):
        try:
            block_hash = db.get_canonical_block_hash(n)
            header = db.get_block_header_by_hash(block_hash)
            if header.hash != block_hash:
                raise ChainDataError("stored header does not hash to its key")
            if parent is not None and header.parent_hash != parent:
                raise ChainDataError("parent hash does not link to the previous block")
            block = chain.get_block_by_header(header)
            if make_trie_root_and_nodes(block.transactions)[0] != header.transaction_root:
                raise ChainDataError("transactions do not match the header's root")
            receipts = block.get_receipts(db)
            if make_trie_root_and_nodes(receipts)[0] != header.receipt_root:
                raise ChainDataError("receipts do not match the header's root")
        except Exception as exc:
            found.append(
                Violation("integrity", name, n, None, None, f"block does not verify: {exc}")
            )
            break
        parent = block_hash
    return found


# -- the audit ------------------------------------------------------------------------------------
class Audit:
    """Reads the root and every region chain and checks the invariants."""

    def __init__(
        self,
        root: ChainBackend,
        regions: Sequence[ChainBackend],
        names: dict[int, str] | None = None,
    ) -> None:
        self.root = root
        self.region_backends = list(regions)
        self.names = names or {}
        self.violations: list[Violation] = []

    def flag(
        self,
        check: str,
        chain: str,
        block: int | None,
        tx: str | None,
        lease: str | None,
        detail: str,
    ) -> None:
        self.violations.append(Violation(check, chain, block, tx, lease, detail))

    async def _find_root(self) -> ContractBinding:
        artifact = load_artifact("RootLedger")
        client = LedgerClient(self.root, dev_keys()[0])
        w3 = self.root.web3
        head = int(await w3.eth.block_number)
        for n in range(head + 1):
            block = await w3.eth.get_block(n)
            for tx_hash in block["transactions"]:
                receipt = await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
                address = receipt.get("contractAddress")
                if address and bytes(await w3.eth.get_code(address)) == artifact.bytecode_runtime:
                    return client.bind(artifact, address)
        raise ChainDataError("no RootLedger contract on the root chain")

    async def run(
        self, at_block: int | None = None, rounds_file: Path | None = None
    ) -> AuditResult:
        root_binding = await self._find_root()
        root = await _read(self.root, "root", [root_binding], upto_block=at_block)
        upto_ts = root.blocks[root.head]["timestamp"] if at_block is not None else None
        registered: dict[int, dict[str, Any]] = {}
        for ev in root.events:
            if ev.name == "RegionRegistered":
                registered[int(ev.args["region"])] = dict(ev.args)
        by_chain_id = {}
        for backend in self.region_backends:
            by_chain_id[int(await backend.web3.eth.chain_id)] = backend
        artifact = load_artifact("RegionMarket")
        regions: dict[int, dict[str, Any]] = {}
        reads: dict[int, ChainRead] = {}
        for region, reg in sorted(registered.items()):
            found = by_chain_id.get(int(reg["shard_chain_id"]))
            name = f"region-{region}"
            if found is None:
                self.flag(
                    "integrity",
                    name,
                    None,
                    None,
                    None,
                    f"no chain with id {reg['shard_chain_id']} was given for this region",
                )
                continue
            backend = found
            client = LedgerClient(backend, dev_keys()[0])
            binding = client.bind(artifact, reg["market"])
            market = RegionMarket(binding, region, int(reg["shard_chain_id"]))
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
            reads[region] = await _read(
                backend, name, [binding], upto_timestamp=upto_ts, at_least_block=attested
            )
            regions[region] = {
                "market": market,
                "members": list(reg["members"]),
                "threshold": int(reg["threshold"]),
                "num_channels": int(await binding.call("num_channels")),
                "protected_mask": int(await binding.call("protected_mask")),
                "epoch_length_s": int(await binding.call("epoch_length_s")),
                "name": self.names.get(region, name),
                "backend": backend,
            }
        result = AuditResult([], [], [], [], [], {}, [], [], [])
        result.chains = [
            {"name": r.name, "chain_id": r.chain_id, "head_block": r.head, "head_hash": r.head_hash}
            for r in (root, *reads.values())
        ]
        for region, read in reads.items():
            await self._region(region, regions[region], read, result)
        self._checkpoints(root, reads, result)
        self._cross(root, result)
        self._rounds(root, rounds_file, result)
        result.regions = {
            r: {k: v for k, v in info.items() if k not in ("market", "backend")}
            for r, info in regions.items()
        }
        result.leases = [
            {k: v for k, v in row.items() if not k.startswith("_")} for row in result.leases
        ]
        result.violations = self.violations
        return result

    async def _region(
        self, region: int, info: dict[str, Any], read: ChainRead, result: AuditResult
    ) -> None:
        market: RegionMarket = info["market"]
        name = read.name
        selector, types = _decoder(market.binding, "settle")
        members, threshold = set(info["members"]), info["threshold"]
        events_by_tx: dict[str, list[Any]] = {}
        for ev in read.events:
            events_by_tx.setdefault(ev.tx_hash, []).append(ev)
        leases: dict[bytes, dict[str, Any]] = {}
        occupancy: dict[int, dict[int, str]] = {}
        sold: dict[bytes, int] = {}
        free = locked = bonds = 0
        for tx in read.txs:
            evs = events_by_tx.get(tx["hash"], [])
            for ev in evs:
                if ev.name == "CommitteeRotated":
                    members, threshold = set(ev.args["members"]), int(ev.args["threshold"])
            if tx["status"] != 1 or tx["to"] != market.address:
                continue
            if tx["input"][:4] == selector:
                epoch, orderbook_root, raw_leases, raw_sigs = abi_decode(types, tx["input"][4:])
                records, total = [], 0
                for raw in raw_leases:
                    offer, bid = Offer.from_abi(raw[0]), Bid.from_abi(raw[2])
                    offer_sig, bid_sig = Sig(*raw[1]), Sig(*raw[3])
                    lease_in_first, price = raw[4], raw[5]
                    record = LeaseRecord(
                        epoch,
                        bid.kind,
                        offer.seller,
                        bid.buyer,
                        bid.nonce,
                        lease_in_first,
                        bid.units,
                        bid.start,
                        bid.end,
                        price,
                        offer.struct_hash(region),
                    )
                    lid = _hex(record.lease_id)
                    if _safe_recover(market.bid_digest(bid), bid_sig) != bid.buyer:
                        self.flag(
                            "signature",
                            name,
                            tx["block"],
                            tx["hash"],
                            lid,
                            f"debit of {price} wei without {bid.buyer}'s bid signature",
                        )
                    if _safe_recover(market.offer_digest(offer), offer_sig) != offer.seller:
                        self.flag(
                            "signature",
                            name,
                            tx["block"],
                            tx["hash"],
                            lid,
                            f"offer not signed by its seller {offer.seller}",
                        )
                    self._occupancy(region, info, record, tx, occupancy, sold, offer, name)
                    leases[record.lease_id] = {
                        "region": region,
                        "lease_id": lid,
                        **_record_row(record),
                        "bid_digest": _hex(market.bid_digest(bid)),
                        "settle_block": tx["block"],
                        "settle_tx": tx["hash"],
                        "state": "active",
                        "state_block": tx["block"],
                        "state_tx": tx["hash"],
                        "_word": (int.from_bytes(record.record_hash(), "big") & ~0xFF) | 1,
                    }
                    records.append(record)
                    total += price
                digest = market.settlement_digest(epoch, orderbook_root, chain_leases_hash(records))
                signers = {_safe_recover(digest, Sig(*sig)) for sig in raw_sigs}
                valid = len(signers & members)
                if valid < threshold:
                    self.flag(
                        "quorum",
                        name,
                        tx["block"],
                        tx["hash"],
                        None,
                        f"epoch {epoch} settled with {valid} valid committee signatures, "
                        f"{threshold} needed",
                    )
                result.settlements.append(
                    {
                        "region": region,
                        "epoch": epoch,
                        "block": tx["block"],
                        "tx": tx["hash"],
                        "orderbook_root": _hex(orderbook_root),
                        "leases": len(records),
                        "total_price_wei": str(total),
                        "signers": valid,
                    }
                )
                result.leases_verified += len(records)
            for ev in evs:
                free, locked, bonds = self._escrow(
                    ev, free, locked, bonds, leases, region, tx, result
                )
            if tx["input"][:4] == selector:
                balance = int(
                    await info["backend"].web3.eth.get_balance(market.address, tx["block"])
                )
                if balance != free + locked + bonds:
                    self.flag(
                        "escrow",
                        name,
                        tx["block"],
                        tx["hash"],
                        None,
                        f"balance {balance} wei != free {free} + locked {locked} + bonds {bonds}",
                    )
        result.leases.extend(leases.values())  # private "_" fields are dropped at the end

    def _occupancy(
        self,
        region: int,
        info: dict[str, Any],
        record: LeaseRecord,
        tx: dict[str, Any],
        occupancy: dict[int, dict[int, str]],
        sold: dict[bytes, int],
        offer: Offer,
        name: str,
    ) -> None:
        lid = _hex(record.lease_id)
        if record.kind == 0:
            mask = ((1 << record.units) - 1) << record.first
            if mask & info["protected_mask"]:
                self.flag(
                    "protected",
                    name,
                    tx["block"],
                    tx["hash"],
                    lid,
                    f"channels {record.first}..{record.first + record.units - 1} "
                    f"touch the protected band",
                )
            length = info["epoch_length_s"]
            for slot in range(record.start // length, record.end // length):
                cells = occupancy.setdefault(slot, {})
                for ch in range(record.first, record.first + record.units):
                    if ch in cells:
                        self.flag(
                            "overlap",
                            name,
                            tx["block"],
                            tx["hash"],
                            lid,
                            f"channel {ch} in slot {slot} is also leased by {cells[ch]}",
                        )
                    cells[ch] = lid
        else:
            sold[record.offer_hash] = sold.get(record.offer_hash, 0) + record.units
            if sold[record.offer_hash] > offer.hi:
                self.flag(
                    "capacity",
                    name,
                    tx["block"],
                    tx["hash"],
                    lid,
                    f"compute offer {_hex(record.offer_hash)} sold "
                    f"{sold[record.offer_hash]} of {offer.hi} units",
                )

    def _escrow(
        self,
        ev: Any,
        free: int,
        locked: int,
        bonds: int,
        leases: dict[bytes, dict[str, Any]],
        region: int,
        tx: dict[str, Any],
        result: AuditResult,
    ) -> tuple[int, int, int]:
        a, name = ev.args, f"region-{region}"

        def pay(who: str, amount: int, kind: str) -> None:
            result.payments.append(
                {
                    "chain": name,
                    "block": tx["block"],
                    "tx": tx["hash"],
                    "who": who,
                    "amount_wei": str(amount),
                    "kind": kind,
                }
            )

        if ev.name == "Deposited":
            free += a["amount_wei"]
            pay(a["who"], a["amount_wei"], "deposit")
        elif ev.name == "Withdrawn":
            free -= a["amount_wei"]
            pay(a["who"], a["amount_wei"], "withdrawal")
        elif ev.name == "BondPosted":
            bonds += a["amount_wei"]
            pay(a["seller"], a["amount_wei"], "bond")
        elif ev.name == "BondWithdrawn":
            bonds -= a["amount_wei"]
            pay(a["seller"], a["amount_wei"], "bond-withdrawal")
        elif ev.name == "Settled":
            free -= a["total_price_wei"]
            locked += a["total_price_wei"]
        elif ev.name in _STATES or ev.name == "Heartbeat":
            lease = leases.get(bytes(a["lease_id"]))
            lid = _hex(a["lease_id"])
            detail = {
                k: (str(v) if isinstance(v, int) else v) for k, v in a.items() if k != "lease_id"
            }
            result.lease_events.append(
                {
                    "region": region,
                    "lease_id": lid,
                    "block": tx["block"],
                    "tx": tx["hash"],
                    "event": ev.name,
                    "detail": json.dumps(detail, default=str),
                }
            )
            if ev.name == "Heartbeat" or lease is None:
                return free, locked, bonds
            price = int(lease["price_wei"])
            lease["state"] = _STATES[ev.name].name.lower()
            lease["state_block"], lease["state_tx"] = tx["block"], tx["hash"]
            lease["_word"] = (lease["_word"] & ~0xFF) | int(_STATES[ev.name])
            lease.setdefault("_history", []).append((tx["block"], lease["_word"]))
            locked -= price
            free += price
            if ev.name == "LeaseCompleted":
                pay(lease["seller"], price, "paid-seller")
            elif ev.name == "LeaseRelinquished":
                pay(lease["seller"], a["paid_seller_wei"], "paid-seller")
                pay(lease["buyer"], a["refund_buyer_wei"], "refund")
            elif ev.name == "LeaseDefaulted":
                bonds -= a["slashed_bond_wei"]
                free += a["slashed_bond_wei"]
                pay(lease["buyer"], price + a["slashed_bond_wei"], "refund+slash")
            else:
                pay(lease["buyer"], price, "refund")
        return free, locked, bonds

    def _checkpoints(
        self, root: ChainRead, reads: dict[int, ChainRead], result: AuditResult
    ) -> None:
        for ev in root.events:
            if ev.name != "CheckpointPosted":
                continue
            a = ev.args
            region, number = int(a["region"]), int(a["block_number"])
            row = {
                "region": region,
                "idx": int(a["index"]),
                "block_number": number,
                "block_hash": _hex(a["block_hash"]),
                "lease_root": _hex(a["lease_root"]),
                "root_block": ev.block_number,
                "root_tx": ev.tx_hash,
            }
            result.checkpoints.append(row)
            read = reads.get(region)
            if read is None:
                continue
            block = read.blocks.get(number)
            if block is None or block["hash"] != row["block_hash"]:
                self.flag(
                    "checkpoint",
                    "root",
                    ev.block_number,
                    ev.tx_hash,
                    None,
                    f"checkpoint {row['idx']} of region {region} names block {number} "
                    f"hash {row['block_hash']}, the shard has "
                    f"{block['hash'] if block else 'no such block'}",
                )
                continue
            words = {}
            for lease in (r for r in result.leases if r["region"] == region):
                word = _word_at(lease, number, read)
                if word is not None:
                    words[bytes.fromhex(lease["lease_id"][2:])] = word
            if _hex(LeaseTree(words).root) != row["lease_root"]:
                self.flag(
                    "checkpoint",
                    "root",
                    ev.block_number,
                    ev.tx_hash,
                    None,
                    f"checkpoint {row['idx']} of region {region}: lease-state root does "
                    f"not match the one rebuilt from the shard's history",
                )

    def _cross(self, root: ChainRead, result: AuditResult) -> None:
        prepared = {}
        final: dict[bytes, str] = {}
        for ev in root.events:
            xid = bytes(ev.args.get("xlease_id", b""))
            if ev.name == "CrossPrepared":
                prepared[xid] = ev
            elif ev.name == "CrossCommitted":
                final[xid] = "committed"
            elif ev.name == "CrossAborted":
                final[xid] = "aborted"
        active = {
            (lease["region"], lease["bid_digest"])
            for lease in result.leases
            if lease["state"] != "none"
        }
        for xid, ev in prepared.items():
            state = final.get(xid, "prepared")
            parts = [
                (int(r), _hex(p)) for r, p in zip(ev.args["regions"], ev.args["parts"], strict=True)
            ]
            present = [p for p in parts if p in active]
            if state == "committed" and len(present) != len(parts):
                missing = [r for r, p in parts if (r, p) not in active]
                self.flag(
                    "cross",
                    "root",
                    ev.block_number,
                    ev.tx_hash,
                    _hex(xid),
                    f"committed cross-region lease is not active in regions {missing}",
                )
            if state == "aborted" and present:
                self.flag(
                    "cross",
                    "root",
                    ev.block_number,
                    ev.tx_hash,
                    _hex(xid),
                    f"aborted cross-region lease is active in regions {[r for r, _ in present]}",
                )

    def _rounds(self, root: ChainRead, rounds_file: Path | None, result: AuditResult) -> None:
        lines = {}
        if rounds_file is not None and rounds_file.exists():
            for line in rounds_file.read_text().splitlines():
                lines[_hex(hashlib.sha256(line.encode()).digest())] = line
        for ev in root.events:
            if ev.name != "RoundConfirmed":
                continue
            a = ev.args
            metrics_hash = _hex(a["metrics_hash"])
            confirmed = lines.get(metrics_hash)
            if rounds_file is not None and confirmed is None:
                self.flag(
                    "metrics",
                    "root",
                    ev.block_number,
                    ev.tx_hash,
                    None,
                    f"round {a['round']} of job {a['job_id']}: no line of "
                    f"{rounds_file.name} hashes to the confirmed {metrics_hash}",
                )
            result.rounds.append(
                {
                    "job": int(a["job_id"]),
                    "round": int(a["round"]),
                    "block": ev.block_number,
                    "tx": ev.tx_hash,
                    "update_hash": _hex(a["update_hash"]),
                    "metrics_hash": metrics_hash,
                    "metrics": confirmed,
                }
            )


def _safe_recover(digest: bytes, sig: Sig) -> str | None:
    try:
        return recover(digest, sig)
    except Exception:
        return None


def _record_row(record: LeaseRecord) -> dict[str, Any]:
    row = asdict(record)
    row["price_wei"] = str(row["price_wei"])
    row["offer_hash"] = _hex(row["offer_hash"])
    return row


def _word_at(lease: dict[str, Any], number: int, read: ChainRead) -> int | None:
    """The lease's storage word as of block ``number`` (None if not settled yet)."""
    if lease["settle_block"] > number:
        return None
    word = (lease["_word"] & ~0xFF) | 1
    for block, later in lease.get("_history", []):
        if block <= number:
            word = later
    return word


# -- the index --------------------------------------------------------------------------------
_TABLES = {
    "chains": ["name", "chain_id", "head_block", "head_hash"],
    "leases": [
        "region",
        "lease_id",
        "epoch",
        "kind",
        "seller",
        "buyer",
        "nonce",
        "first",
        "units",
        "start",
        "end",
        "price_wei",
        "offer_hash",
        "bid_digest",
        "settle_block",
        "settle_tx",
        "state",
        "state_block",
        "state_tx",
    ],
    "lease_events": ["region", "lease_id", "block", "tx", "event", "detail"],
    "payments": ["chain", "block", "tx", "who", "amount_wei", "kind"],
    "settlements": [
        "region",
        "epoch",
        "block",
        "tx",
        "orderbook_root",
        "leases",
        "total_price_wei",
        "signers",
    ],
    "checkpoints": [
        "region",
        "idx",
        "block_number",
        "block_hash",
        "lease_root",
        "root_block",
        "root_tx",
    ],
    "rounds": ["job", "round", "block", "tx", "update_hash", "metrics_hash", "metrics"],
    "violations": ["check_name", "chain", "block", "tx", "lease", "detail"],
}


def _rows(result: AuditResult) -> dict[str, list[tuple[Any, ...]]]:
    data = {
        "chains": result.chains,
        "leases": result.leases,
        "lease_events": result.lease_events,
        "payments": result.payments,
        "settlements": result.settlements,
        "checkpoints": result.checkpoints,
        "rounds": result.rounds,
        "violations": [
            {
                "check_name": v.check,
                **{k: getattr(v, k) for k in ("chain", "block", "tx", "lease", "detail")},
            }
            for v in result.violations
        ],
    }
    return {t: [tuple(row.get(c) for c in cols) for row in data[t]] for t, cols in _TABLES.items()}


def _digest(rows: dict[str, list[tuple[Any, ...]]]) -> str:
    """sha256 of the rebuilt data (every table but ``violations``, which is the verdict)."""
    data = {
        t: sorted((list(row) for row in r), key=lambda x: json.dumps(x, default=str))
        for t, r in sorted(rows.items())
        if t != "violations"
    }
    blob = json.dumps(data, default=str, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _index_digest(path: Path) -> tuple[str | None, str]:
    """(the digest the index claims, the digest of what it holds)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        claimed = conn.execute("SELECT value FROM meta WHERE key = 'digest'").fetchone()
        rows = {
            t: [
                tuple(r)
                for r in conn.execute(
                    f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in cols)} FROM {t}"
                )
            ]
            for t, cols in _TABLES.items()
        }
    finally:
        conn.close()
    return (claimed[0] if claimed else None), _digest(rows)


def write_index(path: Path, result: AuditResult) -> str:
    rows = _rows(result)
    digest = _digest(rows)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    with conn:
        for table, cols in _TABLES.items():
            conn.execute(
                f"CREATE TABLE {table} ({', '.join(f'{chr(34)}{c}{chr(34)}' for c in cols)})"
            )
            conn.executemany(
                f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})", rows[table]
            )
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('digest', ?)", (digest,))
    conn.close()
    tmp.replace(path)
    return digest


# -- entry point ---------------------------------------------------------------------------------
async def run_audit(
    run_dir: Path | None = None,
    manifest: Path | None = None,
    at_block: int | None = None,
    index: Path | None = None,
) -> AuditResult:
    """Audit a run directory (embedded chains) or the nodes of a testnet manifest."""
    backends: list[ChainBackend] = []
    integrity: list[Violation] = []
    try:
        if run_dir is not None:
            chains = run_dir / "chains"
            if not (chains / "root.chain.sqlite").exists():
                if (run_dir / "ledger.json").exists():  # an rpc run: its manifest is recorded
                    recorded = json.loads((run_dir / "ledger.json").read_text()).get("manifest")
                    if recorded:
                        return await run_audit(
                            None, Path(recorded), at_block, index or run_dir / "audit.sqlite"
                        )
                raise ConfigError(f"{run_dir} holds no chains (no chains/root.chain.sqlite)")
            names = sorted(
                p.name.removesuffix(".chain.sqlite") for p in chains.glob("*.chain.sqlite")
            )
            for name in ["root"] + [n for n in names if n != "root"]:
                try:
                    backend = await open_backend(
                        "embedded", directory=chains, chain_name=name, read_only=True
                    )
                except (ChainDataError, ConfigError) as exc:
                    integrity.append(Violation("integrity", name, None, None, None, str(exc)))
                    continue
                backends.append(backend)
                integrity.extend(embedded_integrity(backend, name))
            index = index or run_dir / "audit.sqlite"
            rounds_file = run_dir / "rounds.jsonl"
        elif manifest is not None:
            nodes = load_manifest(manifest)
            for node in nodes:
                backends.append(await open_backend("rpc", url=node.url))
            rounds_file = None
        else:
            raise ConfigError("audit needs a run directory or --manifest testnet.json")
        if integrity:  # damaged chain data: report it, and trust nothing read from it
            return AuditResult(integrity, [], [], [], [], {}, [], [], [])
        audit = Audit(backends[0], backends[1:])
        result = await audit.run(at_block, rounds_file)
        if index is not None and at_block is None:
            if index.exists():
                claimed, actual = _index_digest(index)
                fresh = _digest(_rows(result))
                if claimed != actual:
                    result.violations.append(
                        Violation(
                            "integrity",
                            "index",
                            None,
                            None,
                            None,
                            f"{index.name} was edited after it was written (its digest no longer "
                            f"matches its rows)",
                        )
                    )
                elif claimed != fresh and not result.violations:
                    result.violations.append(
                        Violation(
                            "integrity",
                            "index",
                            None,
                            None,
                            None,
                            f"{index.name} disagrees with the chains (rebuilt anew)",
                        )
                    )
            write_index(index, result)
        return result
    finally:
        for backend in backends:
            await backend.close()


def export_leases(result: AuditResult, fmt: str, path: Path) -> int:
    """Write every rebuilt lease (with its final state) as csv, json or parquet."""
    rows = result.leases
    columns = _TABLES["leases"]
    tmp = path.with_name(path.name + ".tmp")
    if fmt == "json":
        tmp.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    elif fmt == "csv":
        import csv

        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({c: row.get(c) for c in columns} for row in rows)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [row.get(c) for row in rows] for c in columns})
        pq.write_table(table, tmp)
    else:
        raise ConfigError(f"unknown export format {fmt!r}: choose csv, json or parquet")
    tmp.replace(path)
    return len(rows)
