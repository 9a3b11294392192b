"""Each lease's storage word, block by block: the audit's working state, never exported.

A root checkpoint attests a region block and the Merkle root of every lease's
storage word as of that block (the record hash's top bits, the seller's last
heartbeat, the lease's state in its low byte: :func:`ledger.records.lease_word`).
To check it the audit needs each word as it was *then*, not only the
lease's final state, so the settlement replay records every state change here
alongside the exported :class:`~ledger.audit.result.LeaseRow`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..records import LeaseState, lease_word, with_heartbeat, with_state
from .result import LeaseRow

__all__ = ["LeaseHistory"]


@dataclass
class _Tracked:
    row: LeaseRow
    word: int  # as settled: the record hash with ACTIVE in its low byte, no heartbeat
    changes: list[tuple[int, int]] = field(default_factory=list)  # (block, word), chain order


class LeaseHistory:
    """The leases of one region in settlement order, with their words by block."""

    def __init__(self) -> None:
        self._leases: dict[bytes, _Tracked] = {}

    def settled(self, lease_id: bytes, row: LeaseRow, record_hash: bytes) -> None:
        """A lease settled (again: a later settlement of the same id replaces it)."""
        self._leases[lease_id] = _Tracked(row, lease_word(record_hash))

    def get(self, lease_id: bytes) -> LeaseRow | None:
        tracked = self._leases.get(lease_id)
        return tracked.row if tracked else None

    def ended(self, lease_id: bytes, state: LeaseState, block: int, tx: str) -> None:
        """The lease reached ``state`` in ``tx``: its row and its word change."""
        tracked = self._leases[lease_id]
        tracked.row = dataclasses.replace(
            tracked.row, state=state.name.lower(), state_block=block, state_tx=tx
        )
        tracked.changes.append((block, with_state(self._word(tracked), int(state))))

    def heartbeat(self, lease_id: bytes, at: int, block: int) -> None:
        """The lease's seller sent a heartbeat at ``at``: the word's heartbeat moves on."""
        tracked = self._leases[lease_id]
        tracked.changes.append((block, with_heartbeat(self._word(tracked), at)))

    @staticmethod
    def _word(tracked: _Tracked) -> int:
        return tracked.changes[-1][1] if tracked.changes else tracked.word

    def rows(self) -> list[LeaseRow]:
        return [t.row for t in self._leases.values()]

    def words_at(self, block: int) -> dict[bytes, int]:
        """Every lease's word as of ``block`` (leases settled later are absent)."""
        words = {}
        for lease_id, tracked in self._leases.items():
            if tracked.row.settle_block > block:
                continue
            word = tracked.word
            for changed, later in tracked.changes:
                if changed <= block:
                    word = later
            words[lease_id] = word
        return words
