"""Settlement: RegionMarket.vy's settle and the checks of every lease it activates."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from ...records import Bid, Kind, LeaseRecord, Offer, channel_mask, lease_word
from .lifecycle import LifecycleRules
from .state import (
    EPOCH_SEALED,
    EPOCH_SETTLING,
    EPOCH_VOID,
    MAX_SLOTS,
    ZERO32,
    Call,
    Expected,
    address_of,
)


class SettlementRules(LifecycleRules):
    """Every field of every lease a settlement carries, and the epoch's parts."""

    def _activate(self, epoch: int, raw: Any, now: int, events: list[Expected]) -> LeaseRecord:
        raw_offer, offer_sig, raw_bid, bid_sig, first, price = raw
        seller = address_of(raw_offer[0], "the offer's seller")
        buyer = address_of(raw_bid[0], "the bid's buyer")
        o, b = Offer.from_abi(raw_offer), Bid.from_abi(raw_bid)
        lid = b.lease_id()

        def need(ok: bool, reason: str, check: str = "rule") -> None:
            self.need(ok, check, reason, lid)

        need(o.kind == b.kind, "offer and bid are for different resources")
        need(b.units > 0, "bid for zero units")
        need(b.start < b.end, "empty lease window")
        need(b.end > now, "lease window already over")
        need(o.start <= b.start and b.end <= o.end, "lease window outside the offer")
        need(price <= b.max_price_wei, "price above the bid's maximum")
        need(price >= o.reserve_wei * b.units, "price below the offer's reserve")
        offer_hash = o.struct_hash(self.market.region_id)
        signer = self._recover(self.market.offer_digest(o), offer_sig)
        need(signer == seller, "offer not signed by its seller", "signature")
        need(self.get("bond", seller) >= self.config.min_bond_wei, "seller bond below minimum")
        need(self.get("bond_exit_at", seller) == 0, "seller is leaving (bond exit pending)")
        signer = self._recover(self.market.bid_digest(b), bid_sig)
        need(signer == buyer, "bid not signed by its buyer", "signature")
        need(self.get("word", lid) == 0, "bid nonce already used")
        if o.kind == Kind.SPECTRUM:
            need(o.lo <= first and first + b.units <= o.hi, "channels outside the offer")
            need(b.lo <= first and first + b.units <= b.hi, "channels outside the bid")
            need(first + b.units <= self.config.num_channels, "channels outside the region")
            mask = channel_mask(first, b.units)
            need(
                mask & self.config.protected_mask == 0,
                "lease touches a protected band",
                "protected",
            )
            length = self.config.epoch_length_s
            need(b.start % length == 0 and b.end % length == 0, "window not slot-aligned")
            slots = b.end // length - b.start // length
            need(slots <= MAX_SLOTS, "lease longer than MAX_SLOTS")
            for slot in range(b.start // length, b.end // length):
                used = self.get("occupancy", slot)
                need(used & mask == 0, "spectrum lease overlaps another", "overlap")
                self._set("occupancy", slot, used | mask)
        else:
            need(o.kind == Kind.COMPUTE, "unknown resource kind")
            need(first == 0, "compute leases have no channel")
            need(b.lo == o.lo, "compute class differs")
            sold = self.get("sold", offer_hash) + b.units
            need(sold <= o.hi, "compute offer sold beyond capacity", "capacity")
            self._set("sold", offer_hash, sold)
        need(self.get("free", buyer) >= price, "buyer's free balance below price")
        self._add("free", buyer, -price)
        record = LeaseRecord(
            epoch,
            o.kind,
            seller,
            buyer,
            b.nonce,
            first,
            b.units,
            b.start,
            b.end,
            price,
            offer_hash,
        )
        self._set("word", lid, lease_word(record.record_hash()))
        self._set("record", lid, record)
        events.append(
            (
                "LeaseActivated",
                {
                    "lease_id": lid,
                    "epoch": epoch,
                    "kind": o.kind,
                    "seller": seller,
                    "buyer": buyer,
                    "nonce": b.nonce,
                    "first": first,
                    "units": b.units,
                    "start": b.start,
                    "end": b.end,
                    "price_wei": price,
                    "offer_hash": offer_hash,
                },
            )
        )
        return record

    def _settle(self, call: Call, events: list[Expected]) -> None:
        epoch, orderbook_root, leases_hash, steps_hash, leases, steps, sigs = call.args
        get = self.get
        first_part = get("epoch_state", epoch) != EPOCH_SETTLING
        running, count, total = ZERO32, 0, 0
        if not first_part:
            self.need(
                epoch == get("var", "open_epoch") and call.sender == get("var", "open_sender"),
                "rule",
                "not this epoch's sender",
            )
            self.need(len(steps) == 0, "rule", "lifecycle steps ride on an epoch's first part only")
            running = get("var", "open_running", ZERO32)
            count, total = get("var", "open_leases"), get("var", "open_total_wei")
        else:
            self.need(
                epoch > get("var", "last_epoch") and epoch > get("var", "open_epoch"),
                "rule",
                "epoch not after the last settled one",
            )
            previous = get("var", "open_epoch")
            if get("epoch_state", previous) == EPOCH_SETTLING:
                self._set("epoch_state", previous, EPOCH_VOID)
                events.append(("EpochVoided", {"epoch": previous}))
        digest = self.market.settlement_digest(epoch, orderbook_root, leases_hash, steps_hash)
        signers = self._check_quorum(digest, sigs)
        if first_part:
            self._steps(steps, steps_hash, call.timestamp, events)
        part_total = 0
        for raw in leases:
            record = self._activate(epoch, raw, call.timestamp, events)
            running = keccak(running + record.record_hash())
            part_total += record.price_wei
        self._add("var", "total_free", -part_total)
        self._add("var", "total_locked", part_total)
        count, total = count + len(leases), total + part_total
        if running == leases_hash:
            self._set("epoch_state", epoch, EPOCH_SEALED)
            self._set("var", "last_epoch", epoch)
            events.append(
                (
                    "Settled",
                    {
                        "epoch": epoch,
                        "orderbook_root": orderbook_root,
                        "leases_hash": leases_hash,
                        "leases": count,
                        "total_price_wei": total,
                        "signers": signers,
                    },
                )
            )
        else:
            self._set("epoch_state", epoch, EPOCH_SETTLING)
            for name, value in (
                ("open_epoch", epoch),
                ("open_sender", call.sender),
                ("open_running", running),
                ("open_leases", count),
                ("open_total_wei", total),
            ):
                self._set("var", name, value)
            events.append(
                ("SettlementPart", {"epoch": epoch, "leases": len(leases), "running_hash": running})
            )
