"""Which regions answer: outages scripted by the scenario and nodes that stopped answering.

A region whose node does not answer is down for the epoch: it takes no offers or
bids and settles nothing, and every other region goes on. Each epoch the node is
asked again (one short request); once it answers, the region rejoins and its
sequencer catches up with its chain. Any step that finds a region's node gone
mid-epoch (a heartbeat, a completion) marks it down through :meth:`Outages.lost`.
The root is different: without it no round can be confirmed, so a root that does
not answer raises :class:`~agents.errors.RootUnavailable` and the run stops.
"""

from __future__ import annotations

import asyncio

from ledger.errors import NODE_ERRORS
from ledger.region import EpochOutcome, reconcile
from ledger.tiered import TieredLedger

from .errors import RootUnavailable
from .scenario import Scenario

__all__ = ["Outages"]

PROBE_S = 2.0  # how long a node may take to say its block number


class Outages:
    """The regions that are down this epoch, and why; every change is appended to
    ``notes`` (the epoch's notes). Holds no handle on the chains, so a run's checkpoint
    can keep it."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.notes: list[str] = []
        self.epoch = 0  # the epoch running now
        self.unanswered: set[int] = set()  # regions whose node did not answer
        self.log: list[dict[str, object]] = []  # every outage start and end, for the summary
        # (region, outcome) of settlements found on chain once their region rejoined
        self.found: list[tuple[int, EpochOutcome]] = []

    def scripted(self, epoch: int) -> frozenset[int]:
        outage = self.scenario.failures.region_outage
        if outage and outage.from_epoch <= epoch < outage.to_epoch:
            return frozenset({outage.region})
        return frozenset()

    def note(self, line: str) -> None:
        self.notes.append(line)

    async def check(self, ledger: TieredLedger, epoch: int) -> frozenset[int]:
        """Ask every region's node once; returns the regions down for ``epoch``
        (scripted or unanswered). A region that answers again rejoins here."""
        self.epoch = epoch
        answers = await asyncio.gather(*(_answers(ledger, r) for r in ledger.regions))
        for region, answered in zip(ledger.regions, answers, strict=True):
            if answered and region in self.unanswered:
                self.unanswered.discard(region)
                self.log.append({"region": region, "epoch": epoch, "event": "rejoined"})
                self.note(f"region {region}: its node answers again; the region rejoins")
                try:
                    rt = ledger.regions[region]
                    found = await reconcile(rt.sequencer, rt.outcomes)
                except NODE_ERRORS as exc:
                    self.lost(region, exc)
                    continue
                for outcome in found:
                    self.found.append((region, outcome))
                    self.note(
                        f"region {region}: epoch {outcome.epoch}'s settlement was found on "
                        f"chain ({len(outcome.leases)} leases)"
                    )
            elif not answered and region not in self.unanswered:
                self.lost(region, "its node does not answer")
        return self.scripted(epoch) | frozenset(self.unanswered)

    def lost(self, region: int, cause: BaseException | str) -> None:
        """``region``'s node failed a request (``cause``) in the epoch running now: the
        region is down until its node answers."""
        if region in self.unanswered:
            return
        why = cause if isinstance(cause, str) else f"{type(cause).__name__}: {cause}"
        self.unanswered.add(region)
        self.log.append({"region": region, "epoch": self.epoch, "event": "down", "why": why})
        self.note(f"region {region}: down ({why}); the other regions go on")

    @staticmethod
    def root_lost(exc: BaseException) -> RootUnavailable:
        return RootUnavailable(
            f"the root chain stopped answering ({type(exc).__name__}: {exc}); the run "
            "stops here. Its directory holds every epoch up to this one"
        )


async def _answers(ledger: TieredLedger, region: int) -> bool:
    backend = ledger.regions[region].backend
    try:
        async with asyncio.timeout(PROBE_S):
            await backend.web3.eth.block_number
    except Exception:
        return False
    return True
