"""A lease's life: RegionMarket.vy's heartbeat, complete, relinquish, report_default,
expire, and the committee's batches of them."""

from __future__ import annotations

from typing import Any

from eth_utils import keccak

from ...records import LeaseRecord, Step, lease_word
from .escrow import EscrowRules
from .state import (
    EPOCH_SEALED,
    EPOCH_VOID,
    STATE_ACTIVE,
    STATE_COMPLETED,
    STATE_DEFAULTED,
    STATE_EXPIRED,
    STATE_NONE,
    STATE_RELINQUISHED,
    STEP_COMPLETE,
    STEP_DEFAULT,
    STEP_EXPIRE,
    STEP_NONE,
    STEP_RELINQUISH,
    ZERO32,
    Call,
    Expected,
    address_of,
)


class LifecycleRules(EscrowRules):
    """Who may take each step of a lease, when, and which amounts it moves."""

    def _recorded(self, raw_rec: Any) -> tuple[LeaseRecord, bytes]:
        rec = LeaseRecord.from_abi(raw_rec)
        lid = rec.lease_id
        word = self.get("word", lid)
        self.need(word != 0, "lifecycle", "no such lease", lid)
        self.need(
            word >> 72 == lease_word(rec.record_hash()) >> 72,
            "lifecycle",
            "lease record does not match",
            lid,
        )
        self.need(word & 0xFF == STATE_ACTIVE, "lifecycle", "lease is not active", lid)
        return rec, lid

    def _active(self, raw_rec: Any) -> tuple[LeaseRecord, bytes]:
        rec, lid = self._recorded(raw_rec)
        self.need(
            self.get("epoch_state", rec.epoch) == EPOCH_SEALED,
            "lifecycle",
            "lease's epoch is not sealed",
            lid,
        )
        return rec, lid

    def _set_state(self, lid: bytes, state: int) -> None:
        self._set("word", lid, (self.get("word", lid) & ~0xFF) | state)

    def _unlock(self, rec: LeaseRecord, credits: dict[str, int]) -> None:
        """The lease's locked price leaves ``total_locked``; ``credits`` go to free."""
        self._add("var", "total_locked", -rec.price_wei)
        for who, amount in credits.items():
            self._add("free", who, amount)
            self._add("var", "total_free", amount)

    def _do_heartbeat(
        self, raw_rec: Any, party: str, at: int, now: int, ev: list[Expected]
    ) -> None:
        rec, lid = self._active(raw_rec)
        self.need(
            party in (rec.seller, rec.buyer),
            "lifecycle",
            "only the lease's parties send heartbeats",
            lid,
        )
        self.need(at <= now, "lifecycle", "heartbeat from the future", lid)
        if party == rec.seller:
            word = self.get("word", lid)
            if at > (word >> 8) & (2**64 - 1):
                self._set("word", lid, (word & ~((2**64 - 1) << 8)) | (at << 8))
        ev.append(("Heartbeat", {"lease_id": lid, "sender": party, "at": at}))

    def _do_complete(self, raw_rec: Any, party: str, now: int, ev: list[Expected]) -> None:
        rec, lid = self._active(raw_rec)
        if party != rec.buyer:
            self.need(party == rec.seller, "lifecycle", "only the lease's parties complete it", lid)
            self.need(now >= rec.end, "lifecycle", "lease has not ended", lid)
            self.need(
                now < rec.end + self.config.claim_window_s,
                "lifecycle",
                "claim window over: expire it",
                lid,
            )
        self._set_state(lid, STATE_COMPLETED)
        self._unlock(rec, {rec.seller: rec.price_wei})
        ev.append(("LeaseCompleted", {"lease_id": lid, "paid_seller_wei": rec.price_wei}))

    def _do_relinquish(self, raw_rec: Any, party: str, now: int, ev: list[Expected]) -> None:
        rec, lid = self._active(raw_rec)
        self.need(party == rec.buyer, "lifecycle", "only the buyer relinquishes", lid)
        self.need(now < rec.end, "lifecycle", "lease has ended: complete it", lid)
        used = rec.price_wei * (now - rec.start) // (rec.end - rec.start) if now > rec.start else 0
        refund = rec.price_wei - used
        self._set_state(lid, STATE_RELINQUISHED)
        self._add("var", "total_locked", -rec.price_wei)
        self._add("free", rec.buyer, refund)
        self._add("free", rec.seller, used)
        self._add("var", "total_free", rec.price_wei)
        ev.append(
            (
                "LeaseRelinquished",
                {"lease_id": lid, "refund_buyer_wei": refund, "paid_seller_wei": used},
            )
        )

    def _do_default(
        self, raw_rec: Any, attested: bool, party: str, now: int, ev: list[Expected]
    ) -> None:
        rec, lid = self._active(raw_rec)
        members = self.get("var", "members")
        self.need(
            attested or party == rec.buyer or party in members,
            "lifecycle",
            "only the buyer or the committee reports defaults",
            lid,
        )
        last = max((self.get("word", lid) >> 8) & (2**64 - 1), rec.start)
        self.need(
            now > last + self.config.heartbeat_interval_s,
            "lifecycle",
            "seller's heartbeat is not overdue",
            lid,
        )
        self.need(
            now < rec.end + self.config.claim_window_s,
            "lifecycle",
            "claim window over: expire it",
            lid,
        )
        slashed = min(self.get("bond", rec.seller), rec.price_wei)
        self._set_state(lid, STATE_DEFAULTED)
        self._add("bond", rec.seller, -slashed)
        self._add("var", "total_bonds", -slashed)
        self._unlock(rec, {rec.buyer: rec.price_wei + slashed})
        ev.append(
            (
                "LeaseDefaulted",
                {"lease_id": lid, "refund_buyer_wei": rec.price_wei, "slashed_bond_wei": slashed},
            )
        )

    def _do_expire(self, raw_rec: Any, now: int, ev: list[Expected]) -> None:
        rec, lid = self._recorded(raw_rec)
        if self.get("epoch_state", rec.epoch) != EPOCH_VOID:
            self.need(
                self.get("epoch_state", rec.epoch) == EPOCH_SEALED,
                "lifecycle",
                "lease's epoch is not sealed",
                lid,
            )
            self.need(
                now >= rec.end + self.config.claim_window_s,
                "lifecycle",
                "claim window still open",
                lid,
            )
        self._set_state(lid, STATE_EXPIRED)
        self._unlock(rec, {rec.buyer: rec.price_wei})
        ev.append(("LeaseExpired", {"lease_id": lid, "refund_buyer_wei": rec.price_wei}))

    def _steps(self, steps: Any, steps_hash: bytes, now: int, ev: list[Expected]) -> None:
        running = ZERO32
        for raw in steps:
            raw_rec, heartbeat_at, action, raw_party = raw
            step = Step(
                LeaseRecord.from_abi(raw_rec),
                heartbeat_at,
                action,
                address_of(raw_party, "a step's party"),
            )
            running = keccak(running + step.step_hash())
            lid = step.record.lease_id
            state = self.get("word", lid) & 0xFF
            if state not in (STATE_ACTIVE, STATE_NONE):
                ev.append(("StepSkipped", {"lease_id": lid, "action": action, "state": state}))
                continue
            if heartbeat_at != 0:
                self._do_heartbeat(raw_rec, step.record.seller, heartbeat_at, now, ev)
            if action == STEP_COMPLETE:
                self._do_complete(raw_rec, step.party, now, ev)
            elif action == STEP_RELINQUISH:
                self._do_relinquish(raw_rec, step.party, now, ev)
            elif action == STEP_DEFAULT:
                self._do_default(raw_rec, True, step.party, now, ev)
            elif action == STEP_EXPIRE:
                self._do_expire(raw_rec, now, ev)
            else:
                self.need(
                    action == STEP_NONE and heartbeat_at != 0,
                    "lifecycle",
                    "unknown lifecycle step",
                    lid,
                )
        self.need(running == steps_hash, "quorum", "steps do not match the signed steps_hash")

    def _lifecycle(self, call: Call, events: list[Expected]) -> None:
        steps_hash, steps, sigs = call.args
        nonce = self.get("var", "lifecycle_nonce")
        signers = self._check_quorum(self.market.lifecycle_digest(nonce, steps_hash), sigs)
        self._steps(steps, steps_hash, call.timestamp, events)
        self._set("var", "lifecycle_nonce", nonce + 1)
        events.append(
            (
                "LifecycleBatch",
                {"nonce": nonce, "steps_hash": steps_hash, "steps": len(steps), "signers": signers},
            )
        )

    def _heartbeat(self, call: Call, events: list[Expected]) -> None:
        self._do_heartbeat(call.args[0], call.sender, call.timestamp, call.timestamp, events)

    def _complete(self, call: Call, events: list[Expected]) -> None:
        self._do_complete(call.args[0], call.sender, call.timestamp, events)

    def _relinquish(self, call: Call, events: list[Expected]) -> None:
        self._do_relinquish(call.args[0], call.sender, call.timestamp, events)

    def _report_default(self, call: Call, events: list[Expected]) -> None:
        self._do_default(call.args[0], False, call.sender, call.timestamp, events)

    def _expire(self, call: Call, events: list[Expected]) -> None:
        self._do_expire(call.args[0], call.timestamp, events)
