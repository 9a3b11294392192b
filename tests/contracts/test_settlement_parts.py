"""An epoch settled in parts: all or nothing, under one committee signature.

The rule (RegionMarket's docstring): the committee signs the whole epoch's chained
leases hash; every part carries that signature; the parts land in order from one
sender; the epoch seals when the parts' chain reaches the signed hash, and only
then do its leases take lifecycle steps. An epoch still unsealed when a later one
starts is void: its leases can only be expired, refunding each buyer in full.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger.bindings import MAX_LEASES
from ledger.records import LeaseIn, LeaseRecord, LeaseState, chain_leases_hash
from ledger.region.rules import MAX_SLOTS

from .harness import EPOCH, REGION, ROOT, Market, make_market
from .test_region_market import compute_lease, reverts

SEALED, SETTLING, VOID = 2, 1, 3


@pytest.fixture
async def m() -> Market:
    return await make_market(num_channels=16)


@pytest.mark.parametrize(("name", "ours"), [("MAX_LEASES", MAX_LEASES), ("MAX_SLOTS", MAX_SLOTS)])
def test_the_python_side_knows_the_contracts_bounds(name: str, ours: int):
    """The part size settle_epoch cuts to, and the lease length the rules check."""
    source = (Path(__file__).parents[2] / "contracts" / "RegionMarket.vy").read_text()
    found = re.search(rf"^{name}: constant\(uint256\) = (\d+)", source, re.M)
    assert found and int(found.group(1)) == ours


async def _epoch(m: Market, n: int) -> tuple[list[LeaseIn], list[LeaseRecord], bytes, list]:
    """``n`` one-unit compute leases of one offer, and the epoch's signed hash."""
    first = await compute_lease(m, units=1, capacity=n)
    leases = [first]
    for _ in range(n - 1):
        bid = m.bid(
            kind=first.bid.kind, lo=0, hi=0, units=1, start=first.bid.start, end=first.bid.end
        )
        leases.append(m.lease(first.offer, bid, price_wei=first.price_wei))
    records = [lease.record(1, REGION) for lease in leases]
    leases_hash = chain_leases_hash(records)
    digest = m.market.settlement_digest(1, ROOT, leases_hash)
    from ledger.eip712 import quorum_sign

    return leases, records, leases_hash, quorum_sign(digest, m.committee[:2])


async def _state(m: Market, epoch: int) -> int:
    return int(await m.market.binding.call("epoch_state", epoch))


async def test_an_epoch_in_two_parts_seals_with_its_last(m: Market):
    leases, records, leases_hash, sigs = await _epoch(m, 5)
    await m.market.settle(1, ROOT, leases_hash, leases[:3], sigs)
    assert await _state(m, 1) == SETTLING
    assert await m.market.binding.call("last_epoch") == 0
    await reverts("lease's epoch is not sealed", m.market.lifecycle("complete", records[0]))
    receipt = await m.market.settle(1, ROOT, leases_hash, leases[3:], sigs)
    settled = receipt.event("Settled").args
    assert settled["leases"] == 5 and settled["total_price_wei"] == sum(
        r.price_wei for r in records
    )
    assert await _state(m, 1) == SEALED and await m.market.binding.call("last_epoch") == 1
    await m.as_("buyer").lifecycle("complete", records[0])
    assert await m.market.lease_state(records[0].lease_id) == LeaseState.COMPLETED
    assert await m.market.escrow_conserved()


async def test_a_part_from_another_sender_or_out_of_order_is_refused(m: Market):
    leases, _, leases_hash, sigs = await _epoch(m, 4)
    await m.market.settle(1, ROOT, leases_hash, leases[:2], sigs)
    await reverts(
        "not this epoch's sender",
        m.as_("stranger").settle(1, ROOT, leases_hash, leases[2:], sigs),
    )
    # a part that skips a lease lands but cannot seal the epoch
    await m.market.settle(1, ROOT, leases_hash, leases[3:], sigs)
    assert await _state(m, 1) == SETTLING


async def test_an_unsealed_epoch_is_void_once_a_later_one_settles(m: Market):
    leases, records, leases_hash, sigs = await _epoch(m, 4)
    await m.market.settle(1, ROOT, leases_hash, leases[:2], sigs)
    free_before = int(await m.market.binding.call("free", m.addr("buyer")))
    receipt = await m.settle(2, [])
    assert receipt == [] and await _state(m, 1) == VOID and await _state(m, 2) == SEALED
    await reverts(
        "epoch not after the last settled one",
        m.market.settle(1, ROOT, leases_hash, leases[2:], sigs),
    )
    await reverts("lease's epoch is not sealed", m.as_("buyer").lifecycle("complete", records[0]))
    await m.market.lifecycle("expire", records[0])  # at once, by anyone
    after = int(await m.market.binding.call("free", m.addr("buyer")))
    assert after == free_before + records[0].price_wei
    assert await m.market.lease_state(records[0].lease_id) == LeaseState.EXPIRED
    assert await m.market.escrow_conserved()


async def test_a_sealed_epochs_leases_expire_only_after_the_claim_window(m: Market):
    leases, records, leases_hash, sigs = await _epoch(m, 1)
    await m.market.settle(1, ROOT, leases_hash, leases, sigs)
    await reverts("claim window still open", m.market.lifecycle("expire", records[0]))
    window = int(await m.market.binding.call("claim_window_s"))
    await m.travel(records[0].end + window + EPOCH)
    await m.market.lifecycle("expire", records[0])
