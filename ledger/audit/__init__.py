"""Audit lease histories from the chains alone.

Nothing the simulation wrote is trusted: the RootLedger is found on the root
chain by its runtime bytecode, the region markets and committees come from the
root's ``RegionRegistered`` events, and every region chain is matched to its
registration by chain id. Every block, transaction and log is read; every
settlement's calldata is decoded and its committee and EIP-712 signatures are
verified again.

Every successful transaction to a market is decoded from its calldata and run through
:mod:`~ledger.audit.model`, RegionMarket.vy's rules written again in Python from its
source: what the committed contract would refuse is a violation named after the rule,
and the events it would emit (every field and amount) must be the ones logged.

Checks (each violation names the chain, block, transaction and lease):

``overlap``        two spectrum leases share a channel x slot in a region
``protected``      a lease touches the region's protected channels
``capacity``       a compute offer sold beyond its capacity
``quorum``         a settlement or batch without t committee signatures over its
                   result, signers registered, distinct and in increasing order
``signature``      a debit not authorised by the payer's own bid signature (or an
                   offer not signed by its seller, a registration not by its joiner)
``rule``           any other rule a settlement or call broke: price below reserve x
                   units or above the bid's maximum, window outside the offer's,
                   channels outside offer, bid or region, a reused nonce, ...
``lifecycle``      a lease step by someone who may not take it, or when it may not
``event``          an event that differs from what the calldata makes it
``unknown-lease``  a lease event of a lease no settlement activated
``escrow``         after a block that moved money (and at the head), the market's
                   balance != free + locked + bonds rebuilt
``state``          at the head, a lease word, a free balance, a bond or a total in
                   storage that is not what the history rebuilds
``code``           the runtime code at the root or a market is not the artifact's
``registry``       a market the root never registered (a whole chain: a warning)
``checkpoint``     a root checkpoint whose block hash or lease-state root does not
                   match the shard's own history
``cross``          a committed cross-region lease missing in a region, or an aborted
                   one active somewhere
``integrity``      a persisted chain file that does not verify (header hashes, parent
                   links, transaction and receipt roots), or an alarm of the audit index
                   (something it indexed changed; kept until ``--reindex``)
``metrics``        a training round whose metrics file does not hash to the root's record

Warnings, reported without failing the audit: ``reverted`` settlements and batches,
``void`` epochs, and leases still active after their ``claim-window`` closed.

The rooms, each importing only those above it:

- :mod:`~ledger.audit.result`: ``Violation``, ``AuditResult`` and the typed rows;
- :mod:`~ledger.audit.history`: each lease's storage word by block (working state);
- :mod:`~ledger.audit.read`: reading the chains, finding the RootLedger and the regions;
- :mod:`~ledger.audit.calls`: a transaction's calldata decoded by its selector;
- :mod:`~ledger.audit.model`: the contract's rules and state, replayed from calldata;
- :mod:`~ledger.audit.escrow`: the market's money rebuilt from its events;
- :mod:`~ledger.audit.integrity`: re-deriving the blocks of persisted chain files;
- :mod:`~ledger.audit.code`: ``code`` and ``registry``;
- :mod:`~ledger.audit.settlements`: one region replayed (rules, events, escrow, state);
- :mod:`~ledger.audit.checks`: ``checkpoint``, ``cross``, ``metrics``, on the root;
- :mod:`~ledger.audit.index`: the SQLite index (its schema, its heads and alarms) and
  the lease exports;
- :mod:`~ledger.audit.report_script`: the report's inline script and style;
- :mod:`~ledger.audit.report`: the self-contained HTML report;
- :mod:`~ledger.audit.run`: :class:`Audit`, which runs the checks, and :func:`run_audit`.
"""

from __future__ import annotations

from .index import export_leases, write_index
from .report import render_report
from .result import (
    AuditResult,
    ChainRow,
    CheckpointRow,
    LeaseEventRow,
    LeaseRow,
    PaymentRow,
    RegionRow,
    RoundRow,
    SettlementRow,
    Violation,
)
from .run import Audit, run_audit

__all__ = [
    "Audit",
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
    "export_leases",
    "render_report",
    "run_audit",
    "write_index",
]
