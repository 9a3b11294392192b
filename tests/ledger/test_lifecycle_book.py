"""The region's lifecycle book (ledger/region/lifecycle.py): what a party hands in is
checked at once, and what the committee sends is what the contract accepts.

The book runs on a real market (the contract tests' harness): every batch it builds is
sent, so a step the book lets through that the contract refuses fails the test.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.eip712 import Sig
from ledger.records import LeaseRecord, LeaseState, StepAction
from ledger.region import RegionSequencer, SignedStep, StepRefused, Trader

from ..contracts.harness import EPOCH, Market, make_market
from ..contracts.test_region_market import compute_lease, spectrum_lease

A = StepAction


async def _book(m: Market) -> tuple[RegionSequencer, list[LeaseRecord]]:
    records = await m.settle(1, [await spectrum_lease(m), await compute_lease(m, buyer="buyer2")])
    assert m.config is not None
    seq = RegionSequencer(m.market, m.config)
    await seq.sync()
    return seq, records


def _trader(m: Market, who: str) -> Trader:
    return Trader(m.keys[who], m.market, m.market.binding.client)


async def _send(m: Market, seq: RegionSequencer) -> tuple:
    await seq.sync()
    steps = seq.steps.due(seq.now, 128)
    if steps:
        await m.apply_steps(steps)
        seq.steps.landed(steps)
        await seq.sync()
    return steps


async def test_refusals_say_why_and_change_nothing():
    m = await make_market()
    seq, (lease, other) = await _book(m)
    seller, buyer, stranger = (_trader(m, w) for w in ("seller", "buyer", "stranger"))
    forged = SignedStep(lease, int(A.COMPLETE), lease.buyer, seller.step(lease, A.COMPLETE).sig)
    cases = [
        ("not a step", "expected a SignedStep"),
        (SignedStep(lease, 7, lease.buyer, Sig(27, b"\1" * 32, b"\1" * 32)), "unknown"),
        (forged, "not by the party"),
        (buyer.step(lease, A.HEARTBEAT, lease.start + 1), "only the seller's heartbeat"),
        (seller.step(lease, A.RELINQUISH), "only the buyer may relinquish"),
        (seller.step(lease, A.DEFAULT), "only the buyer may default"),
        (stranger.step(lease, A.COMPLETE), "only the lease's parties complete it"),
        (buyer.step(lease, A.EXPIRE), "the committee expires leases itself"),
        (seller.step(lease, A.HEARTBEAT, lease.start - 10), "outside the lease"),
        (buyer.step(other, A.COMPLETE), "only the lease's parties"),  # buyer2's lease
        (buyer.step(replace(lease, price_wei=1), A.COMPLETE), "no such lease"),
    ]
    for signed, reason in cases:
        with pytest.raises(StepRefused, match=reason):
            seq.steps.submit(signed)  # type: ignore[arg-type]
    assert len(seq.steps) == 0
    seq.steps.submit(buyer.step(lease, A.COMPLETE))
    with pytest.raises(StepRefused, match="already has a pending COMPLETE"):
        seq.steps.submit(buyer.step(lease, A.RELINQUISH))


async def test_one_batch_carries_heartbeats_completions_defaults_and_expiries():
    m = await make_market()
    seq, (spectrum, compute) = await _book(m)
    seller, buyer, buyer2 = (_trader(m, w) for w in ("seller", "buyer", "buyer2"))
    await m.travel(spectrum.start + 30)
    seq.steps.submit(seller.step(spectrum, A.HEARTBEAT, spectrum.start + 20))
    seq.steps.submit(buyer.step(spectrum, A.COMPLETE))
    # the compute lease's seller sends nothing: its buyer reports it once overdue
    seq.steps.submit(buyer2.step(compute, A.DEFAULT))
    sent = await _send(m, seq)  # at start + 30: the default is not due yet, so it is dropped
    assert [s.action for s in sent] == [A.COMPLETE]
    assert [why for _, why in seq.steps.dropped] == ["seller's heartbeat is not overdue"]
    assert await m.market.lease_state(spectrum.lease_id) == LeaseState.COMPLETED
    assert await m.market.binding.call("last_heartbeat", spectrum.lease_id) == spectrum.start + 20
    await m.travel(compute.start + 150)
    seq.steps.submit(buyer2.step(compute, A.DEFAULT))
    assert [s.action for s in await _send(m, seq)] == [A.DEFAULT]
    assert await m.market.lease_state(compute.lease_id) == LeaseState.DEFAULTED
    # a lease nobody claims is expired by the committee once its claim window is over
    third = (await m.settle(2, [await spectrum_lease(m, first=2)]))[0]
    await seq.sync()
    assert not await _send(m, seq)
    await m.travel(third.end + m.config.claim_window_s)  # type: ignore[union-attr]
    assert [s.action for s in await _send(m, seq)] == [A.EXPIRE]
    assert await m.market.lease_state(third.lease_id) == LeaseState.EXPIRED
    assert await m.market.escrow_conserved()
    assert EPOCH == 60  # the harness's slot, which the times above count in
