"""The audit replays every market transaction through its own copy of RegionMarket's rules
(:mod:`ledger.audit.model`) and compares the events, field by field.

- on the committed contract, a history of every kind of call (joins, deposits,
  settlements with steps, a standalone batch, direct heartbeats, completions,
  relinquishes, defaults, expiries, withdrawals and a reverted settlement) audits clean:
  the model accepts what the contract accepted and emits the same events;
- on markets built from altered sources (one check taken out, one amount changed), the
  transactions the committed contract would refuse are found, named after the rule, and
  events that do not follow from the calldata are ``event`` violations.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
import vyper

from ledger.audit.code import check_unregistered
from ledger.bindings import RegionMarket
from ledger.chain import Artifact, LedgerClient, load_artifact
from ledger.chain.artifacts import CONTRACTS_DIR
from ledger.eip712 import quorum_sign
from ledger.errors import TransactionReverted
from ledger.records import Step, StepAction, chain_leases_hash, chain_steps_hash

from ..contracts.harness import (
    EPOCH,
    REGION,
    Market,
    address,
    audit_market,
    make_market,
    region_chain,
)
from ..contracts.test_region_market import compute_lease, spectrum_lease

C = StepAction


async def _every_kind_of_call(m: Market) -> None:
    """Joins are made by make_market; then every other function the market has."""
    a = await spectrum_lease(m, first=0)
    b = await spectrum_lease(m, first=1, buyer="buyer2")
    c = await compute_lease(m)
    d = await spectrum_lease(m, first=2)
    rec_a, rec_b, rec_c, rec_d = await m.settle(1, [a, b, c, d])
    await m.travel(rec_a.start + 30)
    await m.as_("seller").lifecycle("heartbeat", rec_a)
    await m.as_("buyer2").lifecycle("relinquish", rec_b)
    await m.travel(rec_a.start + 200)  # past the heartbeat interval: rec_d's seller is silent
    await m.as_("buyer").lifecycle("report_default", rec_d)
    # the next epoch's settlement carries a step: rec_a's heartbeat and the buyer's completion
    e = await spectrum_lease(m, first=3, start=rec_a.start + 5 * EPOCH)
    steps = [Step(rec_a, rec_a.start + 40, C.COMPLETE, rec_a.buyer)]
    records = [e.record(2, REGION)]
    digest = m.market.settlement_digest(
        2, b"\1" * 32, chain_leases_hash(records), chain_steps_hash(steps)
    )
    await m.market.settle(
        2,
        b"\1" * 32,
        chain_leases_hash(records),
        [e],
        quorum_sign(digest, m.committee[:2]),
        steps=steps,
    )
    with pytest.raises(TransactionReverted):  # a settlement the committee did not sign
        await m.market.settle(3, b"\1" * 32, b"\2" * 32, [], [], gas=500_000)
    await m.travel(rec_c.end + 700)  # past rec_c's claim window (600 s)
    await m.apply_steps([Step(rec_c, action=C.EXPIRE)])
    await m.as_("seller").withdraw(10**15)


async def test_the_committed_contract_audits_clean():
    m = await make_market()
    await _every_kind_of_call(m)
    found, warnings = await audit_market(m)
    assert found == []
    assert [w.check for w in warnings] == ["reverted"]
    assert "settle of epoch 3 reverted" in warnings[0].detail


@functools.cache
def _altered(old: str, new: str) -> Artifact:
    """RegionMarket built from its source with ``old`` replaced by ``new``."""
    source = (CONTRACTS_DIR / "RegionMarket.vy").read_text()
    assert source.count(old) == 1, old
    out = vyper.compile_code(
        source.replace(old, new), output_formats=["bytecode", "bytecode_runtime"]
    )
    return dataclasses.replace(
        load_artifact("RegionMarket"),
        bytecode=bytes.fromhex(out["bytecode"].removeprefix("0x")),
        bytecode_runtime=bytes.fromhex(out["bytecode_runtime"].removeprefix("0x")),
    )


async def _below_reserve(m: Market) -> None:
    await m.settle(1, [await spectrum_lease(m, price=10**11)])  # reserve: 10**12 per unit


async def _seller_relinquishes(m: Market) -> None:
    (rec,) = await m.settle(1, [await spectrum_lease(m)])
    await m.travel(rec.start + 10)
    await m.as_("seller").lifecycle("relinquish", rec)


async def _relinquished(m: Market) -> None:
    (rec,) = await m.settle(1, [await spectrum_lease(m)])
    await m.travel(rec.start + EPOCH // 2)
    await m.as_("buyer").lifecycle("relinquish", rec)


async def _overlapping(m: Market) -> None:
    await m.settle(1, [await spectrum_lease(m, units=2), await spectrum_lease(m, first=1)])


async def _over_capacity(m: Market) -> None:
    await m.settle(1, [await compute_lease(m, units=3), await compute_lease(m, units=2)])


async def _outside_offer(m: Market) -> None:
    start = await m.slot_start()
    offer = m.offer(start=start, end=start + EPOCH, lo=0, hi=4)
    bid = m.bid(units=2, start=start, end=start + EPOCH)
    await m.settle(1, [m.lease(offer, bid, first=3)])  # channels 3..4: 4 is not offered


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "history", "check", "detail"),
    [
        (
            'assert used & mask == 0, "spectrum lease overlaps another"',
            "pass",
            _overlapping,
            "overlap",
            "settle succeeded, but RegionMarket refuses it: spectrum lease overlaps another",
        ),
        (
            'assert sold <= o.hi, "compute offer sold beyond capacity"',
            "pass",
            _over_capacity,
            "capacity",
            "compute offer sold beyond capacity",
        ),
        (
            'assert lease.price_wei >= o.reserve_wei * b.units, "price below the offer\'s reserve"',
            "pass",
            _below_reserve,
            "rule",
            "settle succeeded, but RegionMarket refuses it: price below the offer's reserve",
        ),
        (
            'assert party == rec.buyer, "only the buyer relinquishes"',
            "pass",
            _seller_relinquishes,
            "lifecycle",
            "relinquish succeeded, but RegionMarket refuses it: only the buyer relinquishes",
        ),
        (
            "refund: uint256 = rec.price_wei - used",
            "refund: uint256 = rec.price_wei - used - 1",
            _relinquished,
            "event",
            "relinquish: LeaseRelinquished.refund_buyer_wei is",
        ),
        (
            'assert lease.first >= o.lo and lease.first + b.units <= o.hi, "channels outside the offer"',  # noqa: E501
            "pass",
            _outside_offer,
            "rule",
            "channels outside the offer",
        ),
    ],
    ids=[
        "overlap-check-removed",
        "capacity-check-removed",
        "reserve-check-removed",
        "relinquish-by-anyone",
        "refund-short-by-1-wei",
        "offer-channels",
    ],
)
async def test_an_altered_market_is_caught_by_the_rules(old, new, history, check, detail):
    m = await make_market(artifact=_altered(old, new))
    await history(m)
    found, _ = await audit_market(m)
    assert [v.check for v in found if v.check not in ("escrow", "state")] == [check], found
    assert detail in found[0].detail and found[0].tx and found[0].block
    honest = await make_market()
    if check == "event":  # the committed contract takes the same calls and emits the truth
        await history(honest)
        assert (await audit_market(honest))[0] == []
    else:  # it refuses the same history
        with pytest.raises(TransactionReverted):
            await history(honest)


async def test_a_market_the_root_never_registered_is_reported():
    m = await make_market()
    assert await _unregistered(m, []) == []  # the registered market alone: nothing
    assert m.config is not None
    shadow = await RegionMarket.deploy(
        LedgerClient(m.backend, m.keys["admin"]), m.config, [address(k) for k in m.committee]
    )
    shadow_market = dataclasses.replace(m, market=shadow, views={"admin": shadow})
    await shadow_market.settle(1, [])  # an epoch with no lease, on the shadow market
    found = []
    await _unregistered(m, found)
    assert [v.check for v in found] == ["registry"]
    assert "a RegionMarket was deployed at " + shadow.address in found[0].detail


async def _unregistered(m: Market, found: list) -> list:
    await check_unregistered(await region_chain(m), found)
    return found
