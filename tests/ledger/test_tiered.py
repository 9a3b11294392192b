"""The sharded, tiered ledger at work on the embedded backend."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from ledger.chain import EmbeddedChains
from ledger.config import RegionConfig
from ledger.crossregion import CrossRegionLease, Part
from ledger.eip712 import Sig
from ledger.errors import ConfigError, NodeUnavailable
from ledger.records import CrossState, LeaseState, Role
from ledger.region import OrderRefused, Trader, Validator
from ledger.tiered import TieredLedger, derive_key

GENESIS = 1_900_000_000
ETH = 10**18
SPECS = [
    RegionConfig(1, "north", "second_price", protected_channels=(7,)),
    RegionConfig(2, "south", "proportional_fair", num_channels=8),
]


@pytest.fixture
async def ledger(tmp_path: Path):
    tl = await TieredLedger.create(
        tmp_path / "run",
        SPECS,
        seed=7,
        chains=EmbeddedChains(tmp_path / "run" / "chains", genesis_timestamp=GENESIS),
    )
    yield tl
    await tl.close()


async def traders(tl: TieredLedger, region: int, buyers: int = 2):
    rt = tl.regions[region]
    seller = Trader(derive_key(99, f"seller-{region}"), rt.market, rt.client)
    await seller.join(Role.TERRESTRIAL, bond_wei=ETH)
    bs = []
    for i in range(buyers):
        b = Trader(derive_key(99, f"buyer-{region}-{i}"), rt.market, rt.client)
        await b.join(Role.COORDINATOR, deposit_wei=ETH)
        bs.append(b)
    return seller, bs


async def open_epoch(tl: TieredLedger, *regions: int) -> int:
    head = int((await tl.root_backend.web3.eth.get_block("latest"))["timestamp"])
    epoch = head // 60 + 5
    for r in regions or tl.regions:
        await tl.regions[r].sequencer.open(epoch)
    return epoch


# -- bring-up ----------------------------------------------------------------------------------
async def test_bring_up_registers_every_region_on_the_root(ledger: TieredLedger):
    for spec in SPECS:
        entry = await ledger.root.binding.call("regions", spec.region_id)
        rt = ledger.regions[spec.region_id]
        assert entry[0] == rt.chain_id and entry[1] == rt.market.address
        assert entry[3] == rt.config.mechanism_id
    chain_ids = {rt.chain_id for rt in ledger.regions.values()} | {ledger.root.chain_id}
    assert len(chain_ids) == 3
    assert await ledger.regions[1].market.binding.call("protected_mask") == 1 << 7


@pytest.mark.multiproc
async def test_reopen_in_another_process(ledger: TieredLedger):
    seller, (buyer, _) = await traders(ledger, 1)
    epoch = await open_epoch(ledger, 1)
    start, end = ledger.regions[1].sequencer.window(epoch)
    await ledger.regions[1].sequencer.submit_offer(seller.offer(0, 0, 8, start, end, 10))
    await ledger.regions[1].sequencer.submit_bid(buyer.bid(0, 0, 16, 1, start, end, 10**15))
    outcome = await ledger.settle_region(1)
    assert outcome.settled and len(outcome.leases) == 1
    directory, lease_id = ledger.directory, outcome.leases[0].lease_id.hex()
    await ledger.close()
    script = textwrap.dedent(f"""
        import asyncio
        from pathlib import Path
        from ledger.tiered import TieredLedger
        async def main():
            tl = await TieredLedger.open(Path({str(directory)!r}))
            await tl.regions[1].sequencer.sync()
            print(int(tl.regions[1].sequencer.lease_words[bytes.fromhex({lease_id!r})]) & 0xff)
            await tl.close()
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"  # the lease is active in the reopened ledger


async def test_bad_specs_are_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match="threshold 4 must be 1..committee_size"):
        RegionConfig(1, threshold=4)
    with pytest.raises(ConfigError, match="unknown mechanism 'vcg'"):
        RegionConfig(1, mechanism="vcg")
    with pytest.raises(ConfigError, match="no ledger at"):
        await TieredLedger.open(tmp_path)


# -- the sequencer ---------------------------------------------------------------------------------
async def test_bad_orders_are_refused_one_by_one(ledger: TieredLedger):
    seller, (buyer, other) = await traders(ledger, 1)
    seq = ledger.regions[1].sequencer
    with pytest.raises(OrderRefused, match="no epoch is open"):
        await seq.submit_bid(buyer.bid(0, 0, 16, 1, 0, 60, 10))
    epoch = await open_epoch(ledger, 1)
    start, end = seq.window(epoch)
    await seq.submit_offer(seller.offer(0, 0, 8, start, end, 10))
    good = buyer.bid(0, 0, 16, 1, start, end, 10**15)
    await seq.submit_bid(good)
    south = ledger.regions[2].market
    cases = {
        "malformed message": ("not a bid", None),
        "signature is not its buyer's": (
            replace(
                buyer.bid(0, 0, 16, 1, start, end, 10**15), sig=Sig(27, b"\1" * 32, b"\2" * 32)
            ),
            None,
        ),
        "for this region and chain": (
            (lambda b: replace(b, sig=south.sign_bid(buyer.key, b.bid)))(
                buyer.bid(0, 0, 16, 1, start, end, 10**15)
            ),
            None,
        ),
        "is not epoch": (buyer.bid(0, 0, 16, 1, start + 60, end + 60, 10**15), None),
        f"nonce {good.bid.nonce} of": (
            replace(good, bid=replace(good.bid, max_price_wei=5)),
            "resign",
        ),
        "free escrow is": (other.bid(0, 0, 16, 1, start, end, 2 * ETH), None),
        "outside the region's channels": (buyer.bid(0, 10, 40, 1, start, end, 10), None),
        "maximum price": (buyer.bid(0, 0, 16, 1, start, end, 10**40), None),
        "not a sane request": (buyer.bid(0, 0, 16, 0, start, end, 10), None),
        "one-channel bids over the whole band": (buyer.bid(0, 0, 16, 2, start, end, 10), None),
        "unknown resource kind": (buyer.bid(5, 0, 16, 1, start, end, 10), None),
    }
    for reason, (message, how) in cases.items():
        if how == "resign":
            message = replace(message, sig=seq.market.sign_bid(buyer.key, message.bid))
        with pytest.raises(OrderRefused, match=reason):
            await seq.submit_bid(message)
    with pytest.raises(OrderRefused, match="outside the region's channels"):
        await seq.submit_offer(seller.offer(0, 3, 30, start, end, 1))
    with pytest.raises(OrderRefused, match="entirely in protected channels"):
        await seq.submit_offer(seller.offer(0, 7, 8, start, end, 1))
    # none of it harmed the good bid or the epoch
    outcome = await ledger.settle_region(1)
    assert outcome.settled and [r.buyer for r in outcome.leases] == [buyer.address]
    await seq.open(epoch + 1)
    start2, end2 = seq.window(epoch + 1)
    with pytest.raises(OrderRefused, match="is already used"):  # settled: used for good
        await seq.submit_bid(buyer.bid(0, 0, 16, 1, start2, end2, 10**15, nonce=good.bid.nonce))


async def test_epoch_settles_second_price_leases(ledger: TieredLedger):
    seller, buyers = await traders(ledger, 1, buyers=3)
    seq = ledger.regions[1].sequencer
    epoch = await open_epoch(ledger, 1)
    start, end = seq.window(epoch)
    await seq.submit_offer(seller.offer(0, 0, 2, start, end, 10**12))  # two channels
    for b, value in zip(buyers, (5 * 10**14, 9 * 10**14, 7 * 10**14), strict=True):
        await seq.submit_bid(b.bid(0, 0, 16, 1, start, end, value))
    outcome = await ledger.settle_region(1)
    assert outcome.settled and outcome.signers == 3
    assert sorted(r.buyer for r in outcome.leases) == sorted([buyers[1].address, buyers[2].address])
    assert {r.price_wei for r in outcome.leases} == {5 * 10**14}  # the third-highest bid
    market = ledger.regions[1].market
    assert await market.binding.call("free", buyers[1].address) == ETH - 5 * 10**14
    assert await market.escrow_conserved()


# -- the committee ---------------------------------------------------------------------------------
class Faulty(Validator):
    """Signs a different result: every price ``offset`` wei higher (each faulty
    validator its own offset, so faulty ones do not even agree with each other)."""

    def __init__(self, key: bytes, offset: int) -> None:
        super().__init__(key)
        self.offset = offset

    def allocate(self, frozen, mechanism):
        allocation = super().allocate(frozen, mechanism)
        return replace(
            allocation,
            awards=tuple(
                replace(a, price_wei=a.price_wei + self.offset) for a in allocation.awards
            ),
        )


@pytest.mark.parametrize("faulty", [1, 2], ids=["outvoted", "no-quorum"])
async def test_faulty_validators(ledger: TieredLedger, faulty: int):
    rt = ledger.regions[1]
    rt.validators = [Faulty(v.key, i + 1) if i < faulty else v for i, v in enumerate(rt.validators)]
    seller, (buyer, _) = await traders(ledger, 1)
    epoch = await open_epoch(ledger, 1)
    start, end = rt.sequencer.window(epoch)
    await rt.sequencer.submit_offer(seller.offer(0, 0, 8, start, end, 10))
    await rt.sequencer.submit_bid(buyer.bid(0, 0, 16, 1, start, end, 10**15))
    outcome = await ledger.settle_region(1)
    if faulty == 1:
        assert outcome.settled and outcome.signers == 2
    else:
        assert not outcome.settled
        assert outcome.reason == "only 1 of the 2 required validators agree on a result"
        assert await rt.market.binding.call("free", buyer.address) == ETH  # nothing locked
        assert await rt.market.binding.call("last_epoch") == 0


# -- checkpoints ----------------------------------------------------------------------------
async def test_checkpoints_prove_every_lease(ledger: TieredLedger):
    seller, buyers = await traders(ledger, 2, buyers=2)
    seq = ledger.regions[2].sequencer
    epoch = await open_epoch(ledger, 2)
    start, end = seq.window(epoch)
    await seq.submit_offer(seller.offer(0, 0, 8, start, end, 10**12))
    for b in buyers:
        await seq.submit_bid(b.bid(0, 0, 8, 3, start, end, 10**16))
    outcome = await ledger.settle_region(2)
    assert outcome.settled and len(outcome.leases) == 2
    assert await ledger.checkpoint(2) == 0
    for record in outcome.leases:
        assert await ledger.prove(2, record.lease_id)
    # a state change reaches the next checkpoint, and the old proof no longer holds there
    record = outcome.leases[0]
    buyer = next(b for b in buyers if b.address == record.buyer)
    await buyer.market.lifecycle("complete", record)
    assert await ledger.checkpoint(2) == 1
    assert seq.lease_words[record.lease_id] & 0xFF == LeaseState.COMPLETED
    assert await ledger.prove(2, record.lease_id)
    assert not await ledger.prove(2, record.lease_id, index=0)


# -- isolation -------------------------------------------------------------------------------------
async def test_a_dead_region_does_not_stop_the_others(ledger: TieredLedger, monkeypatch):
    sellers = {r: await traders(ledger, r) for r in (1, 2)}
    epoch = await open_epoch(ledger)
    for r, (seller, (buyer, _)) in sellers.items():
        seq = ledger.regions[r].sequencer
        start, end = seq.window(epoch)
        await seq.submit_offer(seller.offer(0, 0, 4, start, end, 10))
        hi = ledger.regions[r].config.num_channels
        await seq.submit_bid(buyer.bid(0, 0, hi, 1, start, end, 10**15))

    async def down(*args, **kwargs):
        raise NodeUnavailable("region 1's node did not answer (simulated outage)")

    monkeypatch.setattr(ledger.regions[1].market, "settle", down)
    outcomes = await ledger.settle_all()
    assert not outcomes[1].settled and "simulated outage" in outcomes[1].reason
    assert outcomes[2].settled and len(outcomes[2].leases) == 1


# -- cross-region leases ---------------------------------------------------------------------------
async def _satellite_parts(ledger: TieredLedger, epoch: int) -> dict[int, Part]:
    parts = {}
    for r in (1, 2):
        rt = ledger.regions[r]
        sat = Trader(derive_key(5, f"sat-{r}"), rt.market, rt.client)
        await sat.join(Role.SATELLITE, bond_wei=ETH)
        buyer = Trader(derive_key(5, f"coord-{r}"), rt.market, rt.client)
        await buyer.join(Role.COORDINATOR, deposit_wei=ETH)
        start, end = rt.sequencer.window(epoch)
        parts[r] = Part(
            sat.offer(0, 0, 4, start, end, 10), buyer.bid(0, 0, 4, 2, start, end, 10**15), 0, 10**14
        )
    return parts


async def test_cross_region_lease_commits_in_every_region(ledger: TieredLedger):
    epoch = await open_epoch(ledger)
    parts = await _satellite_parts(ledger, epoch)
    head = int((await ledger.root_backend.web3.eth.get_block("latest"))["timestamp"])
    x = CrossRegionLease(ledger, parts, deadline=head + 100)
    await x.prepare()
    assert await x.vote(1) and await x.vote(2)
    assert await x.finish() == CrossState.COMMITTED
    outcomes = await ledger.settle_all()
    for r in (1, 2):
        assert outcomes[r].settled
        assert [rec.buyer for rec in outcomes[r].leases] == [parts[r].bid.bid.buyer]


async def test_cross_region_lease_aborts_when_a_region_is_down_past_the_deadline(
    ledger: TieredLedger,
):
    epoch = await open_epoch(ledger)
    parts = await _satellite_parts(ledger, epoch)
    head = int((await ledger.root_backend.web3.eth.get_block("latest"))["timestamp"])
    x = CrossRegionLease(ledger, parts, deadline=head + 100)
    await x.prepare()
    assert await x.vote(1)  # region 2 is down and never votes
    assert ledger.regions[1].sequencer.reserved  # region 1 holds its part meanwhile
    await ledger.root_backend.mine(head + 200)
    assert await x.finish() == CrossState.ABORTED
    assert not any(ledger.regions[1].sequencer.reserved.values())  # released
    outcomes = await ledger.settle_all()
    assert all(not o.leases for o in outcomes.values())  # active in none


async def test_cross_region_lease_aborts_when_a_region_cannot_reserve(ledger: TieredLedger):
    epoch = await open_epoch(ledger)
    parts = await _satellite_parts(ledger, epoch)
    slot = parts[2].bid.bid.start // 60
    ledger.regions[2].sequencer.occupied[slot] = 0b1  # channel 0 already leased there
    head = int((await ledger.root_backend.web3.eth.get_block("latest"))["timestamp"])
    x = CrossRegionLease(ledger, parts, deadline=head + 100)
    await x.prepare()
    assert await x.vote(1) is True
    assert await x.vote(2) is False
    assert await x.state() == CrossState.ABORTED
    assert await x.finish() == CrossState.ABORTED


async def test_checkpoints_every_c_epochs(ledger: TieredLedger):
    seller, (buyer, _) = await traders(ledger, 1)
    seq = ledger.regions[1].sequencer
    epoch = await open_epoch(ledger, 1)
    for e in range(epoch, epoch + 4):
        if e != epoch:
            await seq.open(e)
        start, end = seq.window(e)
        await seq.submit_offer(seller.offer(0, 0, 8, start, end, 10))
        await seq.submit_bid(buyer.bid(0, 0, 16, 1, start, end, 10**15))
        outcomes = await ledger.settle_all(checkpoint_every=2, skip=frozenset({2}))
        assert outcomes[1].settled and outcomes[2].reason == "region is down (outage)"
    assert await ledger.root.binding.call("checkpoint_count", 1) == 2
    assert await ledger.root.binding.call("checkpoint_count", 2) == 0
    for record in seq.records:
        assert await ledger.prove(1, record)
