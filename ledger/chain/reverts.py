"""Revert reasons out of the errors of eth-tester and web3: one reason, whichever node."""

from __future__ import annotations

import re

from web3.exceptions import ContractLogicError

__all__ = ["revert_reason"]

try:
    from eth_tester.exceptions import TransactionFailed as _TesterFailed
except ImportError:  # pragma: no cover - eth-tester is a dependency
    _TesterFailed = ()  # type: ignore[assignment,misc]

_REASON = re.compile(r"execution reverted:?\s*(.*)", re.S)


def revert_reason(exc: BaseException) -> str | None:
    """The revert reason inside an eth-tester or web3 error, or None if it is not a revert."""
    if isinstance(exc, ContractLogicError):
        message = exc.message or str(exc)
    elif _TesterFailed and isinstance(exc, _TesterFailed):
        message = str(exc.args[0]) if exc.args else ""
    else:
        return None
    if isinstance(message, bytes):  # eth-tester may hand back raw revert data
        message = message.decode(errors="replace")
    match = _REASON.search(message)
    reason = (match.group(1) if match else message).strip()
    if reason in ("b''", 'b""'):  # a revert without data, printed as Python bytes
        return ""
    reason = reason.strip("'\"")
    return "" if reason in ("", "None") else reason
