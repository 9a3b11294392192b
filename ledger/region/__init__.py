"""One region shard at work: where a bid is checked and an epoch is settled.

- ``sequencer``  admits signed offers and bids (refusing each bad one with its
                 reason) and freezes the epoch's book at close
- ``fields``     the shape of an order, field by field (types, ranges, addresses,
                 signatures)
- ``view``       the sequencer's view of the chain, followed from its events
- ``committee``  validators re-run the mechanism, check the result against
                 ``rules`` (the contract's settlement rules) and sign; a quorum
                 settles
- ``lifecycle``  admits the parties' signed lease steps (heartbeats, completions,
                 defaults) and hands the committee one batch per settlement
- ``recovery``   what a settlement whose answer was lost did, as the chain tells
- ``worker``     a region's committee and settlement in a process of its own (rpc)
- ``trader``     one account on one market: join, sign offers and bids

Epoch ``e`` of a region leases time slot ``e``: ``[e L, (e + 1) L)``.
"""

from __future__ import annotations

from .committee import EpochOutcome, Validator, settle_epoch
from .lifecycle import LifecycleBook, SignedStep, StepRefused
from .recovery import found_on_chain, reconcile, recover
from .sequencer import FrozenBook, OrderRefused, RegionSequencer
from .trader import Trader
from .worker import RegionWorker, WorkerConfig

__all__ = [
    "EpochOutcome",
    "FrozenBook",
    "LifecycleBook",
    "OrderRefused",
    "RegionSequencer",
    "RegionWorker",
    "SignedStep",
    "StepRefused",
    "Trader",
    "Validator",
    "WorkerConfig",
    "found_on_chain",
    "reconcile",
    "recover",
    "settle_epoch",
]
