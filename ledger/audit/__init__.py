"""Audit lease histories from the chains alone.

Nothing the simulation wrote is trusted: the RootLedger is found on the root
chain by its runtime bytecode, the region markets and committees come from the
root's ``RegionRegistered`` events, and every region chain is matched to its
registration by chain id. Every block, transaction and log is read; every
settlement's calldata is decoded and its committee and EIP-712 signatures are
verified again.

Checks (each violation names the chain, block, transaction and lease):

``overlap``        two spectrum leases share a channel x slot in a region
``protected``      a lease touches the region's protected channels
``capacity``       a compute offer sold beyond its capacity
``quorum``         a settlement without t distinct committee signatures over its result
``signature``      a debit not authorised by the payer's own bid signature (or an
                   offer not signed by its seller)
``escrow``         after a settlement, the market's balance != free + locked + bonds
                   rebuilt from its events
``checkpoint``     a root checkpoint whose block hash or lease-state root does not
                   match the shard's own history
``cross``          a committed cross-region lease missing in a region, or an aborted
                   one active somewhere
``integrity``      a persisted chain file that does not verify (header hashes, parent
                   links, transaction and receipt roots), or an alarm of the audit index
                   (something it indexed changed; kept until ``--reindex``)
``metrics``        a training round whose metrics file does not hash to the root's record

The rooms, each importing only those above it:

- :mod:`~ledger.audit.result`: ``Violation``, ``AuditResult`` and the typed rows;
- :mod:`~ledger.audit.history`: each lease's storage word by block (working state);
- :mod:`~ledger.audit.read`: reading the chains, finding the RootLedger and the regions;
- :mod:`~ledger.audit.integrity`: re-deriving the blocks of persisted chain files;
- :mod:`~ledger.audit.settlements`: ``overlap`` ... ``escrow``, one region replayed;
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
