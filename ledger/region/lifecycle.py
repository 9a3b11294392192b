"""A region's lifecycle book: the lease steps its committee sends with the next settlement.

A lease's parties sign their steps off chain (a LeaseStep message: the seller's
heartbeat, the buyer's completion, relinquishment or default report, a seller's
claim) and hand them to the region, where :meth:`LifecycleBook.submit` checks each
at once: the signature is the party's, the party may take that step, the lease is
active. A refusal says why (:class:`StepRefused`) and touches nothing else.

At each settlement :meth:`LifecycleBook.due` hands the committee one
:class:`~ledger.records.Step` per lease (its seller's latest heartbeat and its one
action, so the lease's record travels once), checked against the contract's time
rules as of the settlement, plus the expiries nobody claimed (the committee's own);
the settlement carries them in its first part, under the quorum's signature, so
the chain sees one transaction per region per epoch (``RegionMarket``'s docstring).
Steps stay pending until they land (:meth:`LifecycleBook.landed`): a settlement
that fails sends them again with the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..eip712 import Sig, recover, typed_digest
from ..errors import LedgerError
from ..records import (
    COMMITTEE,
    LeaseRecord,
    LeaseState,
    Step,
    StepAction,
    lease_heartbeat,
    lease_state_of,
    step_message_hash,
)

if TYPE_CHECKING:
    from .view import RegionView

__all__ = ["LifecycleBook", "SignedStep", "StepRefused"]


class StepRefused(LedgerError):
    """The region refused a lifecycle step; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"step refused: {reason}")


@dataclass(frozen=True)
class SignedStep:
    """One step as a party hands it in: ``action`` HEARTBEAT (at ``at``), COMPLETE,
    RELINQUISH or DEFAULT, signed by ``party`` over its LeaseStep message."""

    record: LeaseRecord
    action: int
    party: str
    sig: Sig
    at: int = 0


_ACTIONS = (StepAction.COMPLETE, StepAction.RELINQUISH, StepAction.DEFAULT)


class LifecycleBook:
    """The steps handed to one region and not yet on its chain."""

    def __init__(self, view: RegionView) -> None:
        self.view = view
        self.heartbeats: dict[bytes, int] = {}  # lease id -> the seller's latest heartbeat
        self.actions: dict[bytes, tuple[int, str]] = {}  # lease id -> (action, party)
        self.dropped: list[tuple[bytes, str]] = []  # steps due() left out, and why

    # -- admission ------------------------------------------------------------------------
    def submit(self, signed: SignedStep) -> None:
        """Admit a party's step, or raise :class:`StepRefused` with the reason."""
        if not isinstance(signed, SignedStep):
            raise StepRefused(f"expected a SignedStep, got {type(signed).__name__}")
        record, view = signed.record, self.view
        lease_id = record.lease_id
        if view.records.get(lease_id) != record:
            raise StepRefused("no such lease on this region's chain")
        if lease_state_of(view.lease_words[lease_id]) != LeaseState.ACTIVE:
            raise StepRefused(f"lease is {lease_state_of(view.lease_words[lease_id]).name}")
        try:
            action = StepAction(signed.action)
        except ValueError:
            raise StepRefused(f"unknown lifecycle action {signed.action!r}") from None
        at = signed.at if action == StepAction.HEARTBEAT else 0
        digest = typed_digest(
            view.market.domain, step_message_hash(view.config.region_id, lease_id, action, at)
        )
        try:
            signer = recover(digest, signed.sig)
        except Exception as exc:  # malformed signatures raise whatever eth-keys raises
            raise StepRefused(f"bad signature: {exc}") from None
        if signer != signed.party:
            raise StepRefused(f"signed by {signer}, not by the party {signed.party}")
        problem = _party_problem(action, signed.party, record)
        if problem:
            raise StepRefused(problem)
        if action == StepAction.HEARTBEAT:
            if at > view.now + view.config.epoch_length_s or at < record.start:
                raise StepRefused(f"heartbeat at {at} is outside the lease and the clock")
            self.heartbeats[lease_id] = max(at, self.heartbeats.get(lease_id, 0))
        elif lease_id in self.actions:
            raise StepRefused(
                f"lease already has a pending {StepAction(self.actions[lease_id][0]).name}"
            )
        else:
            self.actions[lease_id] = (int(action), signed.party)

    # -- the batch ----------------------------------------------------------------------
    def due(self, now: int, limit: int) -> tuple[Step, ...]:
        """Up to ``limit`` steps for a batch landing at ``now``: each lease with a
        pending heartbeat or action (those the contract would refuse at ``now`` are
        dropped, with the reason, into :attr:`dropped`), then expiries."""
        view, cfg = self.view, self.view.config
        steps: list[Step] = []
        for lease_id in sorted(set(self.heartbeats) | set(self.actions)):
            if len(steps) == limit:
                return tuple(steps)
            record = view.records[lease_id]
            word = view.lease_words[lease_id]
            if lease_state_of(word) != LeaseState.ACTIVE:
                self._forget(lease_id)
                continue
            heartbeat = self.heartbeats.get(lease_id, 0)
            action, party = self.actions.get(lease_id, (int(StepAction.NONE), COMMITTEE))
            if record.epoch in view.void_epochs:
                heartbeat, action, party = 0, int(StepAction.EXPIRE), COMMITTEE
            else:
                last = max(lease_heartbeat(word), heartbeat, record.start)
                problem = _time_problem(action, party, record, now, last, cfg)
                if problem:
                    self.dropped.append((lease_id, problem))
                    self.actions.pop(lease_id, None)
                    if not heartbeat:
                        continue
                    action, party = int(StepAction.NONE), COMMITTEE
            steps.append(Step(record, heartbeat, action, party))
        pending = {s.record.lease_id for s in steps}
        for lease_id, record in view.records.items():
            if len(steps) == limit:
                break
            if lease_id in pending or lease_state_of(view.lease_words[lease_id]) != 1:
                continue
            if record.epoch in view.void_epochs or record.end + cfg.claim_window_s <= now:
                steps.append(Step(record, action=int(StepAction.EXPIRE)))
        return tuple(steps)

    def landed(self, steps: tuple[Step, ...]) -> None:
        """These steps are on the chain: they are no longer pending."""
        for step in steps:
            self._forget(step.record.lease_id)

    def _forget(self, lease_id: bytes) -> None:
        self.heartbeats.pop(lease_id, None)
        self.actions.pop(lease_id, None)

    def __len__(self) -> int:
        return len(set(self.heartbeats) | set(self.actions))

    # -- checkpoints -----------------------------------------------------------------------
    def pending(self) -> dict[str, Any]:
        """What a checkpoint keeps of the book (it is rebuilt from the chain otherwise)."""
        return {"heartbeats": dict(self.heartbeats), "actions": dict(self.actions)}

    def restore(self, pending: dict[str, Any]) -> None:
        self.heartbeats = dict(pending["heartbeats"])
        self.actions = dict(pending["actions"])


def _party_problem(action: StepAction, party: str, record: LeaseRecord) -> str:
    """Who may take ``action`` on ``record`` (RegionMarket's one-transaction rules)."""
    if action == StepAction.HEARTBEAT:
        if party != record.seller:
            return "only the seller's heartbeat goes in a batch (the buyer's changes nothing)"
    elif action == StepAction.COMPLETE:
        if party not in (record.buyer, record.seller):
            return "only the lease's parties complete it"
    elif action in (StepAction.RELINQUISH, StepAction.DEFAULT):
        if party != record.buyer:
            return f"only the buyer may {action.name.lower()} it"
    else:
        return f"{action.name} is not a party's step (the committee expires leases itself)"
    return ""


def _time_problem(
    action: int, party: str, record: LeaseRecord, now: int, last_heartbeat: int, cfg: Any
) -> str:
    """Why the contract would refuse ``action`` at ``now`` ("" when it would not)."""
    if action == StepAction.COMPLETE and party != record.buyer:
        if now < record.end:
            return "the seller claims only once the lease has ended"
        if now >= record.end + cfg.claim_window_s:
            return "claim window over: the lease expires"
    elif action == StepAction.RELINQUISH and now >= record.end:
        return "lease has ended: complete it"
    elif action == StepAction.DEFAULT:
        if now <= last_heartbeat + cfg.heartbeat_interval_s:
            return "seller's heartbeat is not overdue"
        if now >= record.end + cfg.claim_window_s:
            return "claim window over: the lease expires"
    return ""
