"""What an audit hands back: its violations and the rows it rebuilt from the chains.

Every row type is a frozen dataclass whose fields are, in order, the columns of
its table in the index (see :mod:`ledger.audit.index`); ``dataclasses.asdict`` of
a row is what the JSON export writes. Rows hold only what was read from the
chains: the audit's working state (a lease's storage word block by block) is
kept apart, in :class:`ledger.audit.history.LeaseHistory`.

Amounts are decimal strings (wei exceed SQLite integers); hashes are 0x-hex.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "AuditResult",
    "ChainRow",
    "CheckpointRow",
    "LeaseEventRow",
    "LeaseRow",
    "PaymentRow",
    "RegionRow",
    "RoundRow",
    "SettlementRow",
    "Violation",
]


@dataclass(frozen=True)
class Violation:
    """One broken invariant, and where on which chain it was found."""

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


@dataclass(frozen=True)
class ChainRow:
    """One chain read: its id and the head the audit read up to."""

    name: str
    chain_id: int
    head_block: int
    head_hash: str


@dataclass(frozen=True)
class LeaseRow:
    """One settled lease, as decoded from its ``settle`` calldata, in its latest state."""

    region: int
    lease_id: str
    epoch: int
    kind: int
    seller: str
    buyer: str
    nonce: int
    first: int
    units: int
    start: int
    end: int
    price_wei: str
    offer_hash: str
    bid_digest: str
    settle_block: int
    settle_tx: str
    state: str  # "active", or the LeaseState that ended it, lower case
    state_block: int
    state_tx: str


@dataclass(frozen=True)
class LeaseEventRow:
    """A lifecycle event of a lease (heartbeat, completion, default, ...)."""

    region: int
    lease_id: str
    block: int
    tx: str
    event: str
    detail: str  # the event's other arguments, as JSON (integers as strings)


@dataclass(frozen=True)
class PaymentRow:
    """Money into or out of a market, or released from a lease's escrow."""

    chain: str
    block: int
    tx: str
    who: str
    amount_wei: str
    kind: str  # deposit, withdrawal, bond, bond-withdrawal, paid-seller, refund, refund+slash


@dataclass(frozen=True)
class SettlementRow:
    """One ``settle`` transaction: an epoch's cleared leases and its committee's quorum."""

    region: int
    epoch: int
    block: int
    tx: str
    orderbook_root: str
    leases: int
    total_price_wei: str
    signers: int  # distinct committee members among the signatures


@dataclass(frozen=True)
class CheckpointRow:
    """A region block the root attested (``CheckpointPosted``)."""

    region: int
    idx: int
    block_number: int
    block_hash: str
    lease_root: str
    root_block: int
    root_tx: str


@dataclass(frozen=True)
class RoundRow:
    """A training round the root confirmed, with the metrics line that hashes to it."""

    job: int
    round: int
    block: int
    tx: str
    update_hash: str
    metrics_hash: str
    metrics: str | None  # None when no line of rounds.jsonl hashes to metrics_hash


@dataclass(frozen=True)
class RegionRow:
    """A region as registered on the root and configured in its market (not in the index)."""

    members: tuple[str, ...]
    threshold: int
    num_channels: int
    protected_mask: int
    epoch_length_s: int
    name: str


@dataclass(kw_only=True)
class AuditResult:
    """The verdict (``violations``) and everything rebuilt to reach it.

    Keyword-only: its many list fields are easy to pass in the wrong order.
    """

    violations: list[Violation] = field(default_factory=list)
    #: found, but no broken rule (reverted settlements, void epochs, leases left active
    #: past their claim window): reported beside the verdict, never failing it
    warnings: list[Violation] = field(default_factory=list)
    leases: list[LeaseRow] = field(default_factory=list)
    settlements: list[SettlementRow] = field(default_factory=list)
    checkpoints: list[CheckpointRow] = field(default_factory=list)
    rounds: list[RoundRow] = field(default_factory=list)
    regions: dict[int, RegionRow] = field(default_factory=dict)
    chains: list[ChainRow] = field(default_factory=list)
    payments: list[PaymentRow] = field(default_factory=list)
    lease_events: list[LeaseEventRow] = field(default_factory=list)
    leases_verified: int = 0
    #: every block's hash read, per chain (not in the index, which keeps each head's)
    block_hashes: dict[str, dict[int, str]] = field(default_factory=dict)
    #: what the audit did besides checking (e.g. the index rebuilt), for people
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations
