"""A mechanism defined here, registered, and run for an epoch: no other module changes.

The sequencer asks it which bids it takes, the coordinator asks it how to write
its demand as bids, the committee runs it, the chain records its leases.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.coordinator import Coordinator
from agents.roles import DEVICE
from agents.scenario import load_scenario
from agents.strategies import Truthful
from ledger.chain import EmbeddedChains, RpcChains
from ledger.chain import testnet as tn
from ledger.config import RegionConfig
from ledger.errors import ConfigError
from ledger.mechanisms import (
    MECHANISMS,
    Allocation,
    Award,
    Book,
    Demand,
    Mechanism,
    Order,
    OrderGroup,
    register_mechanism,
    register_path,
    registered_paths,
    supply_units,
)
from ledger.records import Bid, Kind, Role
from ledger.region import OrderRefused, Trader
from ledger.tiered import TieredLedger, derive_key
from training.parallel.lease import PoolLease

GENESIS = 1_900_000_000
ETH = 10**18


class PostedPrice(Mechanism):
    """A shop: one unit per bid, first bid (by key) first, each unit at its seller's reserve."""

    mechanism_id = 41
    name = "posted_price"

    def refusal(self, bid: Bid, num_channels: int) -> str | None:
        return None if bid.units == 1 else "a posted-price shop sells one unit per bid"

    def orders_for(self, demand: Demand, num_channels: int) -> list[OrderGroup]:
        compute = Order(Kind.COMPUTE, demand.compute_class, 0, 1, demand.compute_value_wei)
        channel = Order(Kind.SPECTRUM, 0, num_channels, 1, demand.channel_value_wei)
        return [OrderGroup((compute,)), *(OrderGroup((channel,)) for _ in range(demand.channels))]

    def allocate(self, book: Book) -> Allocation:
        awards = []
        for kind in (Kind.SPECTRUM, Kind.COMPUTE):
            units = supply_units(book, kind)
            mine = [i for i, b in enumerate(book.bids) if b.kind == kind]
            for i in sorted(mine, key=lambda i: book.bid_keys[i]):
                bid = book.bids[i]
                for j, unit in enumerate(units):
                    fits = (
                        bid.lo <= unit.channel < bid.hi
                        if kind == Kind.SPECTRUM
                        else book.offers[unit.offer].lo == bid.lo
                    )
                    if fits and unit.reserve_wei <= bid.max_price_wei:
                        first = unit.channel if kind == Kind.SPECTRUM else 0
                        awards.append(Award(i, unit.offer, first, 1, unit.reserve_wei))
                        del units[j]
                        break
        return Allocation(self.name, tuple(sorted(awards, key=lambda a: book.bid_keys[a.bid])))


@pytest.fixture
def posted_price():
    register_mechanism(PostedPrice)
    yield PostedPrice
    del MECHANISMS[PostedPrice.mechanism_id]


@pytest.fixture(
    params=[
        "embedded",
        pytest.param("rpc", marks=[pytest.mark.anvil, pytest.mark.multiproc]),
    ]
)
def chains(request, tmp_path: Path):
    """Embedded chains, or an anvil testnet whose region settles in a process of its own
    (which must learn the mechanism too)."""
    if request.param == "embedded":
        yield EmbeddedChains(tmp_path / "run" / "chains", genesis_timestamp=GENESIS)
        return
    nodes = tn.testnet_up([0], tmp_path / "tn")
    try:
        yield RpcChains(tmp_path / "tn" / "testnet.json")
    finally:
        for node in nodes:
            tn.stop_node(node)


async def test_a_registered_mechanism_runs_an_epoch(tmp_path: Path, posted_price, chains):
    config = RegionConfig(0, "shop", "posted_price", num_channels=8)
    assert config.mechanism_id == 41
    tl = await TieredLedger.create(tmp_path / "run", [config], seed=4, chains=chains)
    assert tl.region_processes == isinstance(chains, RpcChains)
    try:
        rt = tl.regions[0]
        operator = Trader(derive_key(4, "operator"), rt.market, rt.client)
        await operator.join(Role.TERRESTRIAL, bond_wei=ETH)
        devices = [Trader(derive_key(4, f"device-{i}"), rt.market, rt.client) for i in range(2)]
        for d in devices:
            await d.join(Role.EDGE_DEVICE, bond_wei=ETH // 10)
        buyer = Trader(derive_key(4, "coordinator"), rt.market, rt.client)
        await buyer.join(Role.COORDINATOR, deposit_wei=ETH)
        head = int((await tl.root_backend.web3.eth.get_block("latest"))["timestamp"])
        epoch = head // 60 + 5
        await rt.sequencer.open(epoch)
        window = rt.sequencer.window(epoch)
        await rt.sequencer.submit_offer(operator.offer(Kind.SPECTRUM, 0, 8, *window, 10**12))
        for i, d in enumerate(devices):
            reserve = (2 + i) * 10**12
            await rt.sequencer.submit_offer(d.offer(Kind.COMPUTE, DEVICE, 1, *window, reserve))
        # the sequencer refuses what the mechanism does not take, with its reason
        with pytest.raises(OrderRefused, match="one unit per bid"):
            await rt.sequencer.submit_bid(buyer.bid(Kind.SPECTRUM, 0, 8, 2, *window, 10**15))
        # the coordinator writes its demand in the mechanism's shape: 2 x (compute + 3 channels)
        coordinator = Coordinator(buyer.key, None, Truthful(), traders={0: buyer})
        lease = PoolLease("data", 2, 1e8, 3, steps=1, duration_s=1.0, bytes_total=0, energy_j=0.0)
        admitted = await coordinator.bid_pool(
            rt.sequencer,
            lease,
            epoch,
            device_price_wei=5 * 10**12,
            channel_price_wei=2 * 10**12,
            refused=pytest.fail,
        )
        assert admitted == 8  # one-unit bids, as the shop takes them
        outcome = await tl.settle_region(0)
    finally:
        await tl.close()
    assert outcome.settled, outcome.reason
    spectrum = sorted(r.first for r in outcome.leases if r.kind == Kind.SPECTRUM)
    compute = sorted(r.price_wei for r in outcome.leases if r.kind == Kind.COMPUTE)
    assert spectrum == list(range(6))  # six distinct channels
    assert compute == [2 * 10**12, 3 * 10**12]  # each device at its own reserve


def test_a_registered_mechanism_is_a_scenario_choice(tmp_path: Path, posted_price):
    path = Path(__file__).resolve().parents[2] / "examples" / "quickstart.toml"
    text = path.read_text().replace('mechanism = "second_price"', 'mechanism = "posted_price"')
    (tmp_path / "shop.toml").write_text(text)
    scenario = load_scenario(tmp_path / "shop.toml")
    assert "posted_price" in [r.mechanism for r in scenario.regions]


def test_other_processes_can_register_it_by_its_path(posted_price):
    path = f"{__name__}:PostedPrice"
    assert registered_paths() == (path,)
    del MECHANISMS[PostedPrice.mechanism_id]
    assert register_path(path) is PostedPrice and registered_paths() == (path,)


def test_a_mechanism_another_process_cannot_import_is_named(posted_price):
    with pytest.raises(ConfigError, match="cannot be imported here"):
        register_path(f"{__name__}:NoSuchMechanism")


def test_clashing_mechanisms_are_refused(posted_price):
    class Again(PostedPrice):
        name = "another"

    with pytest.raises(ConfigError, match="clashes with PostedPrice"):
        register_mechanism(Again)
    with pytest.raises(ConfigError, match="unknown mechanism 'vcg'"):
        RegionConfig(1, mechanism="vcg")
