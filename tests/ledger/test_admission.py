"""Admission: the sequencer refuses every malformed order and every offer its seller's
standing cannot back, with :class:`OrderRefused` and a reason — never a raw exception.

One row per malformed case: each field of an offer and a bid given a wrong type (str,
float, bool, None) or an out-of-range int (negative, 2**256), each address field a
malformed or non-checksummed one, each part of a signature a bad shape. Then the
seller's standing as the sequencer's view follows it from the chain: unregistered, not a
seller, bond below the minimum, bond exit pending, bond withdrawn, bond slashed by a
default.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest

from ledger.chain import dev_keys
from ledger.config import RegionConfig
from ledger.eip712 import HALF_N, Sig
from ledger.records import Bid, Kind, Offer, Role, SignedBid, SignedOffer
from ledger.region import OrderRefused, RegionSequencer, Validator, settle_epoch

from ..contracts.harness import EPOCH, ETH, REGION, Market, address, make_market

CONFIG = RegionConfig(
    REGION, committee_size=3, threshold=2, epoch_length_s=EPOCH, protected_channels=(7,)
)
MIN_BOND = CONFIG.min_bond_wei
NOBODY = dev_keys(10)[9]  # never registered in the market
_N = 2 * HALF_N + 1


@dataclass
class Env:
    m: Market
    seq: RegionSequencer
    epoch: int
    start: int
    end: int

    def offer(self, who: str = "seller", **fields: Any) -> SignedOffer:
        key = self.m.keys.get(who, NOBODY)
        base = Offer(address(key), int(Kind.SPECTRUM), 0, 16, self.start, self.end, 10**12, 1)
        offer = replace(base, **fields)
        return SignedOffer(offer, self.m.market.sign_offer(key, offer))

    def bid(self, who: str = "buyer", **fields: Any) -> SignedBid:
        key = self.m.keys[who]
        base = Bid(address(key), int(Kind.SPECTRUM), 0, 16, 1, self.start, self.end, 10**15, 1)
        bid = replace(base, **fields)
        return SignedBid(bid, self.m.market.sign_bid(key, bid))

    async def next_epoch(self) -> None:
        """Open the next epoch (the sequencer syncs with the chain first)."""
        self.epoch = max(self.epoch + 1, await self.m.now() // EPOCH + 2)
        await self.seq.open(self.epoch)
        self.start, self.end = self.seq.window(self.epoch)


@pytest.fixture
async def env() -> Env:
    m = await make_market(protected_mask=1 << 7)
    await m.as_("stranger").register(Role.SATELLITE)
    await m.as_("stranger").post_bond(MIN_BOND // 10)  # a seller, but below the minimum
    seq = RegionSequencer(m.market, CONFIG)
    e = Env(m, seq, 0, 0, 0)
    await e.next_epoch()
    return e


# -- malformed fields, one row each ------------------------------------------------------------
WRONG_INTS = {"str": "7", "float": 7.0, "bool": True, "none": None, "neg": -1, "2**256": 2**256}
ADDRESS = address(dev_keys(10)[4])
WRONG_ADDRESSES = {
    "int": int(ADDRESS, 16),
    "bytes": bytes.fromhex(ADDRESS[2:]),
    "short": ADDRESS[:-2],
    "no-0x": ADDRESS[2:] + "00",
    "lowercase": ADDRESS.lower(),
    "bad-checksum": ADDRESS[:2] + ADDRESS[2:].swapcase(),
    "not-hex": "0x" + "zz" * 20,
}
OFFER_INTS = ["kind", "lo", "hi", "start", "end", "reserve_wei", "nonce"]
BID_INTS = ["kind", "lo", "hi", "units", "start", "end", "max_price_wei", "nonce"]


def _sig_variants(sig: Sig) -> dict[str, Any]:
    high_s = (_N - int.from_bytes(sig.s, "big")).to_bytes(32, "big")
    return {
        "none": None,
        "tuple": sig.as_tuple(),
        "v-29": Sig(29, sig.r, sig.s),
        "v-0": Sig(0, sig.r, sig.s),
        "v-str": Sig("27", sig.r, sig.s),  # type: ignore[arg-type]
        "v-float": Sig(27.0, sig.r, sig.s),  # type: ignore[arg-type]
        "r-31-bytes": Sig(sig.v, sig.r[1:], sig.s),
        "r-hex-str": Sig(sig.v, sig.r.hex(), sig.s),  # type: ignore[arg-type]
        "r-zero": Sig(sig.v, b"\0" * 32, sig.s),
        "r-curve-order": Sig(sig.v, _N.to_bytes(32, "big"), sig.s),
        "s-list": Sig(sig.v, sig.r, list(sig.s)),  # type: ignore[arg-type]
        "s-zero": Sig(sig.v, sig.r, b"\0" * 32),
        "s-malleable": Sig(55 - sig.v, sig.r, high_s),
    }


def _malformed_offers(e: Env) -> dict[str, Any]:
    good = e.offer()
    rows: dict[str, Any] = {"not-an-order": "an offer", "offer-is-a-bid": e.bid()}
    rows["offer-field-is-a-str"] = SignedOffer("offer", good.sig)  # type: ignore[arg-type]
    rows["offer-field-is-a-bid"] = SignedOffer(e.bid().bid, good.sig)  # type: ignore[arg-type]
    for name in OFFER_INTS:
        for what, value in WRONG_INTS.items():
            rows[f"{name}-{what}"] = replace(good, offer=replace(good.offer, **{name: value}))
    for what, value in WRONG_ADDRESSES.items():
        rows[f"seller-{what}"] = replace(good, offer=replace(good.offer, seller=value))
    for what, sig in _sig_variants(good.sig).items():
        rows[f"sig-{what}"] = replace(good, sig=sig)
    return rows


def _malformed_bids(e: Env) -> dict[str, Any]:
    good = e.bid()
    rows: dict[str, Any] = {"not-an-order": b"a bid", "bid-is-an-offer": e.offer()}
    rows["bid-field-is-a-dict"] = SignedBid({}, good.sig)  # type: ignore[arg-type]
    for name in BID_INTS:
        for what, value in WRONG_INTS.items():
            rows[f"{name}-{what}"] = replace(good, bid=replace(good.bid, **{name: value}))
    for what, value in WRONG_ADDRESSES.items():
        rows[f"buyer-{what}"] = replace(good, bid=replace(good.bid, buyer=value))
    for what, sig in _sig_variants(good.sig).items():
        rows[f"sig-{what}"] = replace(good, sig=sig)
    return rows


async def test_every_malformed_offer_is_refused_with_a_reason(env: Env):
    rows = _malformed_offers(env)
    assert len(rows) > 60
    for name, message in rows.items():
        with pytest.raises(OrderRefused, match="malformed message") as refused:
            await env.seq.submit_offer(message)
        assert refused.value.reason, name
    await env.seq.submit_offer(env.offer())  # the well-formed one is admitted


async def test_every_malformed_bid_is_refused_with_a_reason(env: Env):
    rows = _malformed_bids(env)
    assert len(rows) > 60
    for name, message in rows.items():
        with pytest.raises(OrderRefused, match="malformed message") as refused:
            await env.seq.submit_bid(message)
        assert refused.value.reason, name
        compute = env.bid(kind=int(Kind.COMPUTE), hi=0, nonce=2)
        with pytest.raises(OrderRefused, match="malformed message"):  # inside a bundle
            await env.seq.submit_bundle(message, compute)
        with pytest.raises(OrderRefused, match="malformed message"):
            await env.seq.submit_bundle(env.bid(nonce=3), message)
    await env.seq.submit_bid(env.bid())  # the well-formed one is admitted
    assert len(env.seq.close().bids) == 1  # and nothing of the refused ones stayed


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("kind", "0", "kind must be an integer, got str"),
        ("reserve_wei", 1e12, "reserve_wei must be an integer, got float"),
        ("lo", False, "lo must be an integer, got bool"),
        ("nonce", -1, "nonce -1 is outside uint256"),
        ("nonce", 2**256, "is outside uint256"),
        ("seller", "0x1234", "is not a 0x-prefixed 20-byte hex address"),
        ("seller", ADDRESS.lower(), "is not in its checksummed form"),
    ],
)
async def test_the_reason_names_the_field(env: Env, field: str, value: Any, reason: str):
    good = env.offer()
    with pytest.raises(OrderRefused) as refused:
        await env.seq.submit_offer(replace(good, offer=replace(good.offer, **{field: value})))
    assert reason in refused.value.reason


# -- the seller's standing -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "reason"),
    [
        ("nobody", "seller bond below minimum (not registered as a seller)"),
        ("buyer", "seller bond below minimum (not registered as a seller)"),  # a coordinator
        ("stranger", f"seller bond below minimum ({MIN_BOND // 10} wei posted, {MIN_BOND}"),
    ],
)
async def test_offers_of_sellers_without_standing_are_refused(env: Env, who: str, reason: str):
    with pytest.raises(OrderRefused) as refused:
        await env.seq.submit_offer(env.offer(who))
    assert reason in refused.value.reason
    await env.seq.submit_offer(env.offer("seller"))  # a bonded seller is admitted


async def test_the_view_follows_bond_exits_withdrawals_and_new_bonds(env: Env):
    seller = env.m.as_("seller2")
    await seller.binding.transact("request_bond_exit", gas=100_000)
    await env.seq.submit_offer(env.offer("seller2"))  # this epoch's view is older
    await env.next_epoch()
    with pytest.raises(OrderRefused, match=r"seller is leaving \(bond exit pending\)"):
        await env.seq.submit_offer(env.offer("seller2"))
    notice = int(await env.m.market.binding.call("bond_notice_s"))
    await env.m.travel(await env.m.now() + notice + 1)
    await seller.binding.transact("withdraw_bond", gas=100_000)
    await env.next_epoch()
    with pytest.raises(OrderRefused, match=r"seller bond below minimum \(0 wei posted"):
        await env.seq.submit_offer(env.offer("seller2"))
    await seller.post_bond(MIN_BOND)
    await env.next_epoch()
    await env.seq.submit_offer(env.offer("seller2"))
    assert env.seq.standing(env.m.addr("seller2")).bond_wei == MIN_BOND


async def test_the_view_follows_slashing(env: Env):
    """A default slashes the bond; once below the minimum the seller's offers are refused
    (before, they were admitted and the settlement reverted, every lease with it)."""
    m = env.m
    m.keys["device"] = NOBODY
    await m.as_("device").register(Role.EDGE_DEVICE)
    await m.as_("device").post_bond(MIN_BOND)
    await env.next_epoch()
    price = MIN_BOND  # the slash is min(bond, price): all of it
    await env.seq.submit_offer(env.offer("device", reserve_wei=price))
    await env.seq.submit_bid(env.bid(max_price_wei=price, nonce=100))
    validators = [Validator(k) for k in m.committee]
    outcome = await settle_epoch(m.market, env.seq.close(), validators, 2)
    assert outcome.settled and len(outcome.leases) == 1, outcome
    (record,) = outcome.leases
    heartbeat = int(await m.market.binding.call("heartbeat_interval_s"))
    await m.travel(record.start + heartbeat + 1)
    await m.as_("buyer").lifecycle("report_default", record)
    await env.next_epoch()
    assert env.seq.standing(m.addr("device")).bond_wei == 0
    with pytest.raises(OrderRefused, match=r"seller bond below minimum \(0 wei posted"):
        await env.seq.submit_offer(env.offer("device", reserve_wei=price))


async def test_bids_leave_room_for_committed_cross_region_parts(env: Env):
    """A buyer's committed cross-region part debits its escrow first: its bids may only
    promise what is left."""
    m = env.m
    offer = env.offer("seller").offer
    bid = env.bid("buyer2", units=2, max_price_wei=9 * ETH, nonce=50).bid
    part = m.lease(offer, bid, first=0, price_wei=9 * ETH, bid_key="buyer2")
    env.seq.commit_part(part)
    with pytest.raises(OrderRefused, match="free escrow is 1000000000000000000 wei"):
        await env.seq.submit_bid(env.bid("buyer2", max_price_wei=2 * ETH, nonce=51))
    await env.seq.submit_bid(env.bid("buyer2", max_price_wei=ETH, nonce=52))
