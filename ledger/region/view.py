"""What a region's sequencer knows of its chain, kept by following the market's events.

Free escrow per account, each participant's role and bond (:class:`~ledger.region.rules.Standing`),
every settled lease and its current state word, the channels leased or held per slot,
compute units sold per offer; :meth:`RegionView.chain_state` hands the part of it that a
book's orders name to the settlement rules (:mod:`ledger.region.rules`). Occupancy
changes in one place (:meth:`RegionView.hold`, :meth:`RegionView.release`,
:meth:`RegionView.commit_part` and the leases it follows), with the one channel
mask formula of :func:`ledger.records.channel_mask`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..bindings import RegionMarket
from ..chain import LogIndex
from ..config import RegionConfig
from ..merkle import LeaseTree
from ..records import (
    LEASE_ENDINGS,
    Bid,
    Kind,
    LeaseIn,
    LeaseRecord,
    Offer,
    channel_mask,
    lease_word,
    with_heartbeat,
    with_state,
)
from .rules import MAX_SLOTS, ChainState, Standing, check_leases

__all__ = ["RegionView"]

_STANDING_EVENTS = frozenset({"Registered", "BondPosted", "BondExitRequested", "BondWithdrawn"})


class RegionView:
    """A region market's state as of the last :meth:`sync`, plus what this process holds."""

    def __init__(self, market: RegionMarket, config: RegionConfig) -> None:
        self.market = market
        self.config = config
        self.free: dict[str, int] = {}  # free escrow as of the chain's head, from its events
        self.used_nonces: set[tuple[str, int]] = set()
        self.occupied: dict[int, int] = {}  # slot -> channel bitmap of settled leases
        self.reserved: dict[int, int] = {}  # slot -> channels held for cross-region leases
        self.committed_parts: list[LeaseIn] = []  # cross-region parts to settle when due
        self.sold: dict[bytes, int] = {}  # compute offer hash -> units sold
        self.lease_words: dict[bytes, int] = {}  # lease id -> word, for checkpoints
        self.records: dict[bytes, LeaseRecord] = {}
        self.roles: dict[str, int] = {}  # from Registered
        self.bonds: dict[str, int] = {}  # from BondPosted, BondWithdrawn and slashing
        self.bond_exits: dict[str, int] = {}  # seller -> when its requested exit matures
        self.now = 0  # the head block's timestamp at the last sync
        self.void_epochs: set[int] = set()  # unsealed when a later one began: expire only
        self.index = LogIndex(market.binding.client)
        self.index.watch(market.binding)

    async def sync(self) -> None:
        """Follow the region chain: settled leases and their later state changes."""
        before = len(self.index.events)
        await self.index.sync()
        for event in self.index.events[before:]:
            self._follow(event.name, event.args)
        client = self.index.client
        head = await client._with_retries(
            "eth_getBlockByNumber", lambda: client.web3.eth.get_block("latest")
        )
        self.now = int(head["timestamp"])

    def _follow(self, name: str, args: dict[str, Any]) -> None:
        """Apply one market event to the sequencer's view (free escrow, leases, states)."""
        free = self.free
        if name in ("Deposited", "Withdrawn"):
            free[args["who"]] = int(args["free_wei"])
        elif name in _STANDING_EVENTS:
            self._follow_standing(name, args)
        elif name == "EpochVoided":
            self.void_epochs.add(int(args["epoch"]))
        elif name == "LeaseActivated":
            record = LeaseRecord.from_event(args)
            if record.lease_id not in self.records:
                free[record.buyer] = free.get(record.buyer, 0) - record.price_wei
            self._remember(record)
        elif name == "Heartbeat":
            lease_id = bytes(args["lease_id"])
            if args["sender"] == self.records[lease_id].seller:
                self.lease_words[lease_id] = with_heartbeat(
                    self.lease_words[lease_id], int(args["at"])
                )
        elif name in LEASE_ENDINGS:
            lease_id = bytes(args["lease_id"])
            record = self.records[lease_id]
            self.lease_words[lease_id] = with_state(self.lease_words[lease_id], LEASE_ENDINGS[name])
            if name == "LeaseCompleted":
                free[record.seller] = free.get(record.seller, 0) + int(args["paid_seller_wei"])
            elif name == "LeaseRelinquished":
                free[record.buyer] = free.get(record.buyer, 0) + int(args["refund_buyer_wei"])
                free[record.seller] = free.get(record.seller, 0) + int(args["paid_seller_wei"])
            elif name == "LeaseDefaulted":
                slashed = int(args["slashed_bond_wei"])
                self.bonds[record.seller] = self.bonds.get(record.seller, 0) - slashed
                free[record.buyer] = (
                    free.get(record.buyer, 0)
                    + int(args["refund_buyer_wei"])
                    + int(args["slashed_bond_wei"])
                )
            else:  # expired
                free[record.buyer] = free.get(record.buyer, 0) + int(args["refund_buyer_wei"])

    def _follow_standing(self, name: str, args: dict[str, Any]) -> None:
        if name == "Registered":
            self.roles[args["who"]] = int(args["role"])
        elif name == "BondPosted":
            self.bonds[args["seller"]] = int(args["bond_wei"])
        elif name == "BondExitRequested":
            self.bond_exits[args["seller"]] = int(args["withdrawable_at"])
        else:  # BondWithdrawn: all of it, and the exit is over
            self.bonds[args["seller"]] = 0
            self.bond_exits.pop(args["seller"], None)

    def standing(self, who: str) -> Standing:
        """``who``'s role, bond and pending bond exit, as of the last sync."""
        return Standing(self.roles.get(who, 0), self.bonds.get(who, 0), self.bond_exits.get(who, 0))

    def chain_state(self, offers: Sequence[Offer], bids: Sequence[Bid]) -> ChainState:
        """What the settlement rules need to know of the chain about these orders."""
        cfg, length = self.config, self.config.epoch_length_s
        slots: set[int] = set()
        for b in bids:
            first = b.start // length
            slots.update(range(first, min(b.end // length, first + MAX_SLOTS)))
        hashes = (o.struct_hash(cfg.region_id) for o in offers if o.kind == Kind.COMPUTE)
        return ChainState(
            region=cfg.region_id,
            num_channels=cfg.num_channels,
            protected_mask=cfg.protected_mask,
            epoch_length_s=length,
            min_bond_wei=cfg.min_bond_wei,
            now=self.now,
            free={b.buyer: self.free.get(b.buyer, 0) for b in bids},
            standing={o.seller: self.standing(o.seller) for o in offers},
            used_nonces=frozenset(
                (b.buyer, b.nonce) for b in bids if (b.buyer, b.nonce) in self.used_nonces
            ),
            occupied={s: self.occupied[s] for s in slots if s in self.occupied},
            sold={h: self.sold[h] for h in hashes if h in self.sold},
        )

    def settlement_problem(self, lease: LeaseIn) -> str | None:
        """Why the contract would refuse ``lease`` settled on its own now, or None."""
        state = self.chain_state([lease.offer], [lease.bid])
        _, dropped = check_leases([lease], state, self.market.domain)
        return dropped[0].reason if dropped else None

    def _remember(self, record: LeaseRecord) -> None:
        lease_id = record.lease_id
        if lease_id in self.records:
            return
        self.records[lease_id] = record
        self.used_nonces.add((record.buyer, record.nonce))
        self.lease_words[lease_id] = lease_word(record.record_hash())
        if record.kind == Kind.SPECTRUM:
            self._occupy(record)
        else:
            self.sold[record.offer_hash] = self.sold.get(record.offer_hash, 0) + record.units

    # -- after settlement ------------------------------------------------------------------
    def apply(self, leases: Sequence[LeaseRecord]) -> None:
        """Take a settled epoch's leases into the view before the chain is read again."""
        length = self.config.epoch_length_s
        for record in leases:
            if record.lease_id not in self.records:
                self.free[record.buyer] = self.free.get(record.buyer, 0) - record.price_wei
            self._remember(record)
            slot = record.start // length
            if self.reserved.get(slot) and record.kind == Kind.SPECTRUM:  # held, now leased
                self.reserved[slot] &= ~channel_mask(record.first, record.units)

    # -- occupancy: the one place channel bitmaps change -----------------------------------
    def taken(self, slot: int) -> int:
        """Channels of ``slot`` already leased or held for a cross-region lease."""
        return self.occupied.get(slot, 0) | self.reserved.get(slot, 0)

    def _occupy(self, record: LeaseRecord) -> None:
        mask = channel_mask(record.first, record.units)
        length = self.config.epoch_length_s
        for slot in range(record.start // length, record.end // length):
            self.occupied[slot] = self.occupied.get(slot, 0) | mask

    def hold(self, lease: LeaseIn) -> bool:
        """Hold a cross-region part's channels in its slot; False when they are not free
        (taken, or protected). Compute parts need no channels."""
        if lease.bid.kind != Kind.SPECTRUM:
            return True
        slot = lease.bid.start // self.config.epoch_length_s
        mask = channel_mask(lease.first, lease.bid.units)
        if self.taken(slot) & mask or mask & self.config.protected_mask:
            return False
        self.reserved[slot] = self.reserved.get(slot, 0) | mask
        return True

    def release(self, lease: LeaseIn) -> None:
        """Give back what :meth:`hold` took (the cross-region lease was aborted)."""
        if lease.bid.kind != Kind.SPECTRUM:
            return
        slot = lease.bid.start // self.config.epoch_length_s
        self.reserved[slot] = self.reserved.get(slot, 0) & ~channel_mask(
            lease.first, lease.bid.units
        )

    def commit_part(self, lease: LeaseIn) -> None:
        """A committed cross-region part: it stays held and settles in its epoch's close."""
        self.committed_parts.append(lease)

    def lease_tree(self) -> LeaseTree:
        return LeaseTree(self.lease_words)
