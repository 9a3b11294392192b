"""RegionMarket.vy's rules written again in Python, from its source, to replay a region.

Why a second copy of the contract: a market's events say what its code did, and the
code check says the code *now* is the committed one; neither says that what the
market accepted, all along, is what the committed contract accepts. The audit runs
every successful transaction to a market through :class:`MarketModel`, fed only
with the transaction's calldata, sender, value and block time:

- a transaction the model refuses broke the rule named in :class:`Refused`
  (``signature``, ``quorum``, ``overlap``, ``protected``, ``capacity``,
  ``lifecycle`` or ``rule``), whatever the market's events claim;
- otherwise the model returns the events the committed contract emits for it, with
  every field (amounts included) computed from the calldata and the state the model
  rebuilt; the audit compares them with the logs, field by field (``event``).

Each method below follows the Vyper function of the same name, assertion for
assertion and in the same order (the messages are the contract's), so a reader can
hold the two side by side. A refused transaction leaves the model as it was
(:meth:`MarketModel.apply` undoes its writes), as the EVM would.
"""

from __future__ import annotations

from .settlement import SettlementRules
from .state import Call, Expected, MarketConfig, Refused

__all__ = ["Call", "Expected", "MarketConfig", "MarketModel", "Refused"]


class MarketModel(SettlementRules):
    """RegionMarket's state and rules: :meth:`apply` a call, get the events it emits."""
