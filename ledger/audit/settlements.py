"""Settlement checks: one region's transactions replayed in chain order.

Each successful ``settle`` transaction's calldata is decoded again; from it the
lease records are rebuilt (nothing is taken from the market's own events), and

- every debit must carry the buyer's own EIP-712 bid signature, and every offer
  its seller's (``signature``);
- the committee as of that transaction (rotations included) must have signed the
  settlement digest over exactly these leases, ``threshold`` distinct members or
  more (``quorum``);
- spectrum leases must not share a channel x slot nor touch the protected band,
  and compute offers must not be sold beyond their capacity (``overlap``,
  ``protected``, ``capacity``);
- after each block that moved the market's money, its balance must equal free +
  locked + bonds as rebuilt from every deposit, withdrawal, bond and lease event so
  far (``escrow``);
- at the audited block, the market's storage must be what its history rebuilds:
  every lease's word, each participant's free escrow and bond, the totals, and the
  balance their sum (``state``, ``escrow``): a node that rewrote storage or balance
  is caught even where no later transaction touched it.
"""

from __future__ import annotations

import json
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, get_abi_input_types, to_checksum_address

from ..chain import ContractBinding, Event
from ..eip712 import Sig, recover
from ..records import (
    LEASE_ENDINGS,
    Bid,
    Kind,
    LeaseRecord,
    Offer,
    Step,
    chain_leases_hash,
    chain_steps_hash,
    channel_mask,
)
from .history import LeaseHistory
from .read import RegionChain, TxRead, hex0x
from .result import LeaseEventRow, LeaseRow, PaymentRow, SettlementRow, Violation

__all__ = ["Escrow", "Occupancy", "SettlementAudit"]


def settle_decoder(binding: ContractBinding, name: str = "settle") -> tuple[bytes, list[str]]:
    """(``name``'s 4-byte selector, its argument types) from the market's ABI."""
    abi = next(a for a in binding.artifact.abi if a.get("name") == name)
    types = list(get_abi_input_types(abi))  # type: ignore[arg-type]
    return function_signature_to_4byte_selector(f"{name}({','.join(types)})"), types


def _steps(raw_steps: Any) -> list[Step]:
    """Steps decoded from calldata, as the committee built them."""
    return [
        Step(
            LeaseRecord.from_abi(raw[0]),
            raw[1],
            raw[2],
            to_checksum_address(raw[3].to_bytes(32, "big")[12:]),
        )
        for raw in raw_steps
    ]


def _safe_recover(digest: bytes, sig: Sig) -> str | None:
    """The signer, or None for a signature that recovers no one (as good as unsigned)."""
    try:
        return recover(digest, sig)
    except Exception:
        return None


class Occupancy:
    """Who holds each channel in each slot, and how much of each compute offer is sold."""

    def __init__(
        self, chain: str, protected_mask: int, epoch_length_s: int, found: list[Violation]
    ) -> None:
        self.chain = chain
        self.protected_mask = protected_mask
        self.epoch_length_s = epoch_length_s
        self.found = found
        self.cells: dict[int, dict[int, str]] = {}  # slot -> channel -> lease id
        self.sold: dict[bytes, int] = {}  # offer hash -> units

    def add(self, record: LeaseRecord, offer: Offer, block: int, tx: str) -> None:
        """Take ``record``'s channels (spectrum) or compute units; flag what it breaks."""
        lid = hex0x(record.lease_id)

        def flag(check: str, detail: str) -> None:
            self.found.append(Violation(check, self.chain, block, tx, lid, detail))

        if record.kind != Kind.SPECTRUM:
            sold = self.sold[record.offer_hash] = self.sold.get(record.offer_hash, 0) + record.units
            if sold > offer.hi:
                flag(
                    "capacity",
                    f"compute offer {hex0x(record.offer_hash)} sold {sold} of {offer.hi} units",
                )
            return
        mask = channel_mask(record.first, record.units)
        if mask & self.protected_mask:
            flag(
                "protected",
                f"channels {record.first}..{record.first + record.units - 1} "
                f"touch the protected band",
            )
        length = self.epoch_length_s
        for slot in range(record.start // length, record.end // length):
            cells = self.cells.setdefault(slot, {})
            for ch in range(record.first, record.first + record.units):
                if ch in cells:
                    flag("overlap", f"channel {ch} in slot {slot} is also leased by {cells[ch]}")
                cells[ch] = lid


class Escrow:
    """The market's money rebuilt from its events: free deposits, locked prices, bonds.

    A lease's end releases its locked price (and may slash its seller's bond), so
    the lease events are replayed here too: they move the lease to its final state
    in the :class:`LeaseHistory` and are kept as rows of their own.
    """

    def __init__(self, region: RegionChain, history: LeaseHistory) -> None:
        self.region = region.id
        self.chain = region.name
        self.history = history
        self.free = self.locked = self.bonds = 0
        self.free_of: dict[str, int] = {}  # each participant's free escrow, rebuilt
        self.bond_of: dict[str, int] = {}  # each seller's bond, rebuilt
        self.payments: list[PaymentRow] = []
        self.lease_events: list[LeaseEventRow] = []

    def _credit(self, who: str, amount: int) -> None:
        self.free_of[who] = self.free_of.get(who, 0) + amount

    def debit(self, buyer: str, price: int) -> None:
        """A lease activated (settlement calldata): its price leaves the buyer's escrow."""
        self._credit(buyer, -price)

    @property
    def total(self) -> int:
        """What the market's balance must be."""
        return self.free + self.locked + self.bonds

    def _pay(self, tx: TxRead, who: str, amount: int, kind: str) -> None:
        self.payments.append(
            PaymentRow(
                chain=self.chain,
                block=tx.block,
                tx=tx.hash,
                who=who,
                amount_wei=str(amount),
                kind=kind,
            )
        )

    def apply(self, ev: Event, tx: TxRead) -> None:
        """Replay one event of the market, emitted by ``tx``."""
        a = ev.args
        if ev.name == "Deposited":
            self.free += a["amount_wei"]
            self._credit(a["who"], a["amount_wei"])
            self._pay(tx, a["who"], a["amount_wei"], "deposit")
        elif ev.name == "Withdrawn":
            self.free -= a["amount_wei"]
            self._credit(a["who"], -a["amount_wei"])
            self._pay(tx, a["who"], a["amount_wei"], "withdrawal")
        elif ev.name == "BondPosted":
            self.bonds += a["amount_wei"]
            self.bond_of[a["seller"]] = self.bond_of.get(a["seller"], 0) + a["amount_wei"]
            self._pay(tx, a["seller"], a["amount_wei"], "bond")
        elif ev.name == "BondWithdrawn":
            self.bonds -= a["amount_wei"]
            self.bond_of[a["seller"]] = self.bond_of.get(a["seller"], 0) - a["amount_wei"]
            self._pay(tx, a["seller"], a["amount_wei"], "bond-withdrawal")
        elif ev.name == "Settled":
            self.free -= a["total_price_wei"]
            self.locked += a["total_price_wei"]
        elif ev.name in LEASE_ENDINGS or ev.name == "Heartbeat":
            self._lease_event(ev, tx)

    def _lease_event(self, ev: Event, tx: TxRead) -> None:
        a = ev.args
        lease_id = bytes(a["lease_id"])
        detail = {k: (str(v) if isinstance(v, int) else v) for k, v in a.items() if k != "lease_id"}
        self.lease_events.append(
            LeaseEventRow(
                region=self.region,
                lease_id=hex0x(lease_id),
                block=tx.block,
                tx=tx.hash,
                event=ev.name,
                detail=json.dumps(detail, default=str),
            )
        )
        lease = self.history.get(lease_id)
        if lease is None:
            return
        if ev.name == "Heartbeat":
            if a["sender"] == lease.seller:
                self.history.heartbeat(lease_id, int(a["at"]), tx.block)
            return
        price = int(lease.price_wei)
        self.history.ended(lease_id, LEASE_ENDINGS[ev.name], tx.block, tx.hash)
        self.locked -= price
        self.free += price
        if ev.name == "LeaseCompleted":
            self._credit(lease.seller, price)
            self._pay(tx, lease.seller, price, "paid-seller")
        elif ev.name == "LeaseRelinquished":
            self._credit(lease.seller, a["paid_seller_wei"])
            self._credit(lease.buyer, a["refund_buyer_wei"])
            self._pay(tx, lease.seller, a["paid_seller_wei"], "paid-seller")
            self._pay(tx, lease.buyer, a["refund_buyer_wei"], "refund")
        elif ev.name == "LeaseDefaulted":
            self.bonds -= a["slashed_bond_wei"]
            self.free += a["slashed_bond_wei"]
            self.bond_of[lease.seller] = self.bond_of.get(lease.seller, 0) - a["slashed_bond_wei"]
            self._credit(lease.buyer, price + a["slashed_bond_wei"])
            self._pay(tx, lease.buyer, price + a["slashed_bond_wei"], "refund+slash")
        else:
            self._credit(lease.buyer, price)
            self._pay(tx, lease.buyer, price, "refund")


class SettlementAudit:
    """Replays one region's chain; its rows and ``history`` are read after :meth:`run`."""

    def __init__(self, region: RegionChain, found: list[Violation]) -> None:
        self.region = region
        self.found = found
        self.selector, self.types = settle_decoder(region.market.binding)
        self.batch_selector, self.batch_types = settle_decoder(region.market.binding, "lifecycle")
        self.members, self.threshold = set(region.members), region.threshold
        self.history = LeaseHistory()
        self.occupancy = Occupancy(region.name, region.protected_mask, region.epoch_length_s, found)
        self.escrow = Escrow(region, self.history)
        self.settlements: list[SettlementRow] = []
        self.running: dict[int, bytes] = {}  # epoch -> lease chain of its parts so far
        self.verified = 0  # leases whose signatures were checked

    def flag(self, check: str, tx: TxRead, lease: str | None, detail: str) -> None:
        self.found.append(Violation(check, self.region.name, tx.block, tx.hash, lease, detail))

    async def run(self) -> SettlementAudit:
        market = self.region.market
        events_by_tx: dict[str, list[Event]] = {}
        for ev in self.region.read.events:
            events_by_tx.setdefault(ev.tx_hash, []).append(ev)
        moved: TxRead | None = None  # the last market transaction of the block being read
        for tx in self.region.read.txs:
            if moved is not None and tx.block != moved.block:  # after each block that
                await self._check_balance(moved)  # moved the market's money
                moved = None
            evs = events_by_tx.get(tx.hash, [])
            for ev in evs:  # the committee that signs this transaction's settlement
                if ev.name == "CommitteeRotated":
                    self.members = set(ev.args["members"])
                    self.threshold = int(ev.args["threshold"])
            if tx.status != 1 or tx.to != market.address:
                continue
            if tx.input[:4] == self.selector:
                self._settle(tx, sealed=any(ev.name == "Settled" for ev in evs))
            elif tx.input[:4] == self.batch_selector:
                self._batch(tx, evs)
            for ev in evs:
                self.escrow.apply(ev, tx)
            moved = tx
        if moved is not None:
            await self._check_balance(moved)
        await self._check_head()
        return self

    def _settle(self, tx: TxRead, sealed: bool) -> None:
        """One settlement transaction: a whole epoch, or one of its parts (the chain of
        lease hashes runs on across parts and must reach the signed one when it seals)."""
        epoch, orderbook_root, leases_hash, steps_hash, raw_leases, raw_steps, raw_sigs = (
            abi_decode(self.types, tx.input[4:])
        )
        if raw_steps and chain_steps_hash(_steps(raw_steps)) != steps_hash:
            self.flag("quorum", tx, None, f"epoch {epoch}'s lifecycle steps are not those signed")
        records = [self._lease(epoch, raw, tx) for raw in raw_leases]
        running = chain_leases_hash(records, self.running.pop(epoch, bytes(32)))
        if sealed and running != leases_hash:
            self.flag(
                "quorum",
                tx,
                None,
                f"epoch {epoch} sealed with leases that do not chain to the signed leases_hash",
            )
        elif not sealed:
            self.running[epoch] = running
        market = self.region.market
        digest = market.settlement_digest(epoch, orderbook_root, leases_hash, steps_hash)
        valid = self._quorum(digest, raw_sigs, tx, f"epoch {epoch} settled")
        self.settlements.append(
            SettlementRow(
                region=self.region.id,
                epoch=epoch,
                block=tx.block,
                tx=tx.hash,
                orderbook_root=hex0x(orderbook_root),
                leases=len(records),
                total_price_wei=str(sum(r.price_wei for r in records)),
                signers=valid,
            )
        )
        self.verified += len(records)

    def _quorum(self, digest: bytes, raw_sigs: Any, tx: TxRead, what: str) -> int:
        """How many distinct members signed ``digest``; flags fewer than the threshold."""
        signers = {_safe_recover(digest, Sig(*sig)) for sig in raw_sigs}
        valid = len(signers & self.members)
        if valid < self.threshold:
            self.flag(
                "quorum",
                tx,
                None,
                f"{what} with {valid} valid committee signatures, {self.threshold} needed",
            )
        return valid

    def _batch(self, tx: TxRead, evs: list[Event]) -> None:
        """A standalone lifecycle batch: its steps must be the ones a quorum signed."""
        steps_hash, raw_steps, raw_sigs = abi_decode(self.batch_types, tx.input[4:])
        batch = next((ev for ev in evs if ev.name == "LifecycleBatch"), None)
        if batch is None or chain_steps_hash(_steps(raw_steps)) != steps_hash:
            self.flag("quorum", tx, None, "lifecycle batch whose steps are not those signed")
            return
        digest = self.region.market.lifecycle_digest(int(batch.args["nonce"]), steps_hash)
        self._quorum(digest, raw_sigs, tx, f"lifecycle batch {batch.args['nonce']} sent")

    def _lease(self, epoch: int, raw: Any, tx: TxRead) -> LeaseRecord:
        """One ``LeaseIn`` of the calldata: rebuilt, its signatures checked, recorded."""
        market = self.region.market
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
            offer.struct_hash(self.region.id),
        )
        lid = hex0x(record.lease_id)
        bid_digest = market.bid_digest(bid)
        if _safe_recover(bid_digest, bid_sig) != bid.buyer:
            self.flag(
                "signature", tx, lid, f"debit of {price} wei without {bid.buyer}'s bid signature"
            )
        if _safe_recover(market.offer_digest(offer), offer_sig) != offer.seller:
            self.flag("signature", tx, lid, f"offer not signed by its seller {offer.seller}")
        self.occupancy.add(record, offer, tx.block, tx.hash)
        self.escrow.debit(record.buyer, price)
        row = LeaseRow(
            region=self.region.id,
            lease_id=lid,
            epoch=record.epoch,
            kind=record.kind,
            seller=record.seller,
            buyer=record.buyer,
            nonce=record.nonce,
            first=record.first,
            units=record.units,
            start=record.start,
            end=record.end,
            price_wei=str(record.price_wei),
            offer_hash=hex0x(record.offer_hash),
            bid_digest=hex0x(bid_digest),
            settle_block=tx.block,
            settle_tx=tx.hash,
            state="active",
            state_block=tx.block,
            state_tx=tx.hash,
        )
        self.history.settled(record.lease_id, row, record.record_hash())
        return record

    async def _check_balance(self, tx: TxRead) -> None:
        market, escrow = self.region.market, self.escrow
        web3 = self.region.backend.web3
        balance = int(await web3.eth.get_balance(market.address, tx.block))
        if balance != escrow.total:
            self.flag(
                "escrow",
                tx,
                None,
                f"balance {balance} wei != free {escrow.free} + locked {escrow.locked} "
                f"+ bonds {escrow.bonds}",
            )

    async def _check_head(self) -> None:
        """At the audited block, the market's storage must be what its history rebuilds:
        every lease's word, every participant's free escrow and bond, the three totals,
        and its balance their sum (``state``, ``escrow``)."""
        read, market, escrow = self.region.read, self.region.market.binding, self.escrow
        head = read.head

        def flag(check: str, lease: str | None, detail: str) -> None:  # no transaction
            self.found.append(Violation(check, self.region.name, head, None, lease, detail))

        async def value(fn: str, *args: Any) -> int:
            return int(await market.call(fn, *args, block=head))

        for lease_id, word in self.history.words_at(head).items():
            on_chain = await value("lease_word", lease_id)
            if on_chain != word:
                flag("state", hex0x(lease_id), f"lease word {on_chain:#x}, rebuilt {word:#x}")
        for what, rebuilt in (("free", escrow.free_of), ("bond", escrow.bond_of)):
            for who, amount in rebuilt.items():
                on_chain = await value(what, who)
                if on_chain != amount:
                    flag("state", None, f"{what}({who}) = {on_chain} wei, rebuilt {amount}")
        locked = sum(int(r.price_wei) for r in self.history.rows() if r.state == "active")
        totals = {
            "total_free": sum(escrow.free_of.values()),
            "total_locked": locked,
            "total_bonds": sum(escrow.bond_of.values()),
        }
        for name, rebuilt_total in totals.items():
            on_chain = await value(name)
            if on_chain != rebuilt_total:
                flag("state", None, f"{name} = {on_chain} wei, rebuilt {rebuilt_total}")
        balance = int(await self.region.backend.web3.eth.get_balance(market.address, head))
        if balance != sum(totals.values()):
            flag(
                "escrow",
                None,
                f"balance {balance} wei at the head != the rebuilt free + locked + bonds "
                f"{sum(totals.values())}",
            )
