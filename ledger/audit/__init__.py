"""Audit lease histories from the chains alone."""

from __future__ import annotations

from .report import render_report
from .run import Audit, AuditResult, Violation, export_leases, run_audit, write_index

__all__ = [
    "Audit",
    "AuditResult",
    "Violation",
    "export_leases",
    "render_report",
    "run_audit",
    "write_index",
]
