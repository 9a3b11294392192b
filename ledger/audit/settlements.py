"""One region's transactions replayed in chain order, from calldata, against the contract.

Every successful transaction to the market is decoded from its calldata and run
through :class:`~ledger.audit.model.MarketModel`, RegionMarket.vy's rules written
again from its source, with the transaction's sender, value and block time:

- what the committed contract refuses is a violation named after the rule it broke:
  a debit without the buyer's EIP-712 bid signature or an offer without its
  seller's (``signature``); a settlement or batch without a quorum of the committee
  as of that transaction, signers distinct and in increasing order (``quorum``);
  channels shared in a slot, the protected band, a compute offer sold past its
  capacity (``overlap``, ``protected``, ``capacity``); a price below reserve x units
  or above the bid's maximum, a window outside the offer's, channels outside offer,
  bid or region, a reused nonce, a seller without bond (``rule``); a lifecycle step
  by someone who may not take it, or at a time it may not be taken (``lifecycle``);
- the events the contract emits for the transaction, every field and amount
  computed from calldata and rebuilt state, must be the ones logged (``event``);
- a lease event of a lease no settlement activated (``unknown-lease``);
- after each block that moved the market's money, its balance must equal free +
  locked + bonds as rebuilt (``escrow``); at the audited block, the market's storage
  must be what the history rebuilds: every lease's word, each participant's free
  escrow and bond, the totals, and the balance their sum (``state``, ``escrow``).

Reported without failing the audit (``warnings``): settlements and batches that
reverted, epochs voided, and leases still active after their claim window closed.
"""

from __future__ import annotations

from typing import Any

from ..chain import Event
from ..eip712 import Sig, recover
from ..records import Bid, LeaseRecord, Offer
from .calls import CallDecoder
from .escrow import Escrow
from .history import LeaseHistory
from .model import Call, Expected, MarketConfig, MarketModel, Refused
from .read import RegionChain, TxRead, hex0x
from .result import LeaseRow, SettlementRow, Violation

__all__ = ["SettlementAudit", "event_difference"]

_CONFIG = (
    "num_channels",
    "protected_mask",
    "epoch_length_s",
    "heartbeat_interval_s",
    "claim_window_s",
    "min_bond_wei",
    "bond_notice_s",
)


def _norm(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list | tuple):
        return tuple(_norm(v) for v in value)
    return value


def event_difference(expected: list[Expected], logged: list[Event]) -> str | None:
    """The first way ``logged`` differs from the events the contract emits, or None."""
    for i, (want, got) in enumerate(zip(expected, logged, strict=False)):
        name, args = want
        if got.name != name:
            return f"event {i} is {got.name}; the contract emits {name} there"
        for key, value in args.items():
            if _norm(got.args.get(key)) != _norm(value):
                return (
                    f"{name}.{key} is {_norm(got.args.get(key))}; "
                    f"the calldata makes it {_norm(value)}"
                )
    if len(expected) != len(logged):
        names = [e[0] for e in expected]
        return f"{len(logged)} events logged; the contract emits {len(expected)}: {names}"
    return None


def _signer(digest: bytes, raw_sig: Any) -> str | None:
    try:
        return recover(digest, Sig(*raw_sig))
    except Exception:
        return None


class SettlementAudit:
    """Replays one region's chain; its rows and ``history`` are read after :meth:`run`."""

    def __init__(
        self, region: RegionChain, found: list[Violation], warnings: list[Violation] | None = None
    ) -> None:
        self.region = region
        self.found = found
        self.warnings = warnings if warnings is not None else []
        self.calls = CallDecoder(region.market.binding)
        self.history = LeaseHistory()
        self.escrow = Escrow(region, self.history, found)
        self.settlements: list[SettlementRow] = []
        self.verified = 0  # leases whose every field and signature were checked
        self.model: MarketModel | None = None

    def flag(self, check: str, tx: TxRead, lease: str | None, detail: str) -> None:
        self.found.append(Violation(check, self.region.name, tx.block, tx.hash, lease, detail))

    def warn(self, check: str, tx: TxRead | None, lease: str | None, detail: str) -> None:
        block = tx.block if tx else self.region.read.head
        self.warnings.append(
            Violation(check, self.region.name, block, tx.hash if tx else None, lease, detail)
        )

    async def _model(self) -> MarketModel:
        """The model as the market was deployed: its settings (which no transaction
        changes) and its committee as the root registered it."""
        market = self.region.market
        values = [int(await market.binding.call(name)) for name in _CONFIG]
        config = MarketConfig(*values)
        return MarketModel(market, config, self.region.members, self.region.threshold)

    async def run(self) -> SettlementAudit:
        market = self.region.market
        self.model = model = await self._model()
        events_by_tx: dict[str, list[Event]] = {}
        for ev in self.region.read.events:
            events_by_tx.setdefault(ev.tx_hash, []).append(ev)
        moved: TxRead | None = None  # the last market transaction of the block being read
        for tx in self.region.read.txs:
            if moved is not None and tx.block != moved.block:  # after each block that
                await self._check_balance(moved)  # moved the market's money
                moved = None
            if tx.to != market.address:
                continue
            evs = events_by_tx.get(tx.hash, [])
            decoded = self.calls.decode(tx.input)
            if tx.status != 1:
                if decoded and decoded[0] in ("settle", "lifecycle"):
                    what = f"epoch {decoded[1][0]}" if decoded[0] == "settle" else "batch"
                    self.warn("reverted", tx, None, f"{decoded[0]} of {what} reverted")
                continue
            self._replay(model, tx, decoded, evs)
            if decoded and decoded[0] == "settle":
                self._settle(tx, decoded[1])
            for ev in evs:
                if ev.name == "EpochVoided":
                    self.warn("void", tx, None, f"epoch {ev.args['epoch']} voided: unsealed")
                self.escrow.apply(ev, tx)
            moved = tx
        if moved is not None:
            await self._check_balance(moved)
        await self._check_head()
        self._check_claim_windows(model)
        return self

    def _replay(
        self, model: MarketModel, tx: TxRead, decoded: tuple[str, Any] | None, evs: list[Event]
    ) -> None:
        """Run ``tx`` through the contract's rules and compare its events."""
        if decoded is None:
            self.flag("rule", tx, None, "a call no function of RegionMarket takes succeeded")
            return
        name, args = decoded
        timestamp = self.region.read.blocks[tx.block].timestamp
        try:
            expected = model.apply(Call(name, args, tx.sender, tx.value, timestamp))
        except Refused as refused:
            self.flag(
                refused.check,
                tx,
                refused.lease,
                f"{name} succeeded, but RegionMarket refuses it: {refused.reason}",
            )
            return
        difference = event_difference(expected, evs)
        if difference is not None:
            self.flag("event", tx, None, f"{name}: {difference}")

    def _settle(self, tx: TxRead, args: tuple[Any, ...]) -> None:
        """One settlement transaction (a whole epoch, or one of its parts): its leases,
        rebuilt from calldata alone, become rows of the history."""
        epoch, orderbook_root, _, _, raw_leases, _, raw_sigs = args
        records = [self._lease(epoch, raw, tx) for raw in raw_leases]
        digest = self.region.market.settlement_digest(*args[:4])
        members = set(self.model.get("var", "members")) if self.model else set()
        signers = {_signer(digest, raw) for raw in raw_sigs} & members
        self.settlements.append(
            SettlementRow(
                region=self.region.id,
                epoch=epoch,
                block=tx.block,
                tx=tx.hash,
                orderbook_root=hex0x(orderbook_root),
                leases=len(records),
                total_price_wei=str(sum(r.price_wei for r in records)),
                signers=len(signers),
            )
        )
        self.verified += len(records)

    def _lease(self, epoch: int, raw: Any, tx: TxRead) -> LeaseRecord:
        """One ``LeaseIn`` of the calldata, recorded as a lease of the history."""
        market = self.region.market
        offer, bid = Offer.from_abi(raw[0]), Bid.from_abi(raw[2])
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
        self.escrow.debit(record.buyer, price)
        row = LeaseRow(
            region=self.region.id,
            lease_id=hex0x(record.lease_id),
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
            bid_digest=hex0x(market.bid_digest(bid)),
            settle_block=tx.block,
            settle_tx=tx.hash,
            state="active",
            state_block=tx.block,
            state_tx=tx.hash,
        )
        self.history.settled(record.lease_id, row, record.record_hash())
        return record

    def _check_claim_windows(self, model: MarketModel) -> None:
        """Leases still active once their claim window closed: their price stays locked
        until someone expires them (reported, not a broken rule)."""
        read = self.region.read
        now = read.blocks[read.head].timestamp
        window = model.config.claim_window_s
        for row in self.history.rows():
            if row.state == "active" and now >= row.end + window:
                self.warn(
                    "claim-window",
                    None,
                    row.lease_id,
                    f"still active {now - row.end - window} s after its claim window closed "
                    f"(ended {row.end}); expire it to refund the buyer",
                )

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
