"""The market's money rebuilt from its events: free escrow, locked prices, bonds.

The audit checks the events themselves against the calldata (:mod:`.model`); this
replays them into per-participant balances, the totals and the payment rows, which
the balance after every block and the storage at the head are compared with.
"""

from __future__ import annotations

import json

from ..chain import Event
from ..records import LEASE_ENDINGS
from .history import LeaseHistory
from .read import RegionChain, TxRead, hex0x
from .result import LeaseEventRow, PaymentRow, Violation

__all__ = ["Escrow"]


class Escrow:
    """The market's money rebuilt from its events: free deposits, locked prices, bonds.

    A lease's end releases its locked price (and may slash its seller's bond), so
    the lease events are replayed here too: they move the lease to its final state
    in the :class:`LeaseHistory` and are kept as rows of their own.
    """

    def __init__(self, region: RegionChain, history: LeaseHistory, found: list[Violation]) -> None:
        self.found = found
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
        if lease is None:  # no settlement activated it: the market cannot have emitted this
            self.found.append(
                Violation(
                    "unknown-lease",
                    self.chain,
                    tx.block,
                    tx.hash,
                    hex0x(lease_id),
                    f"{ev.name} of a lease that no settlement of this market activated",
                )
            )
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
