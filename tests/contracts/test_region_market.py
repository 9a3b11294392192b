"""RegionMarket: every success path, every rejection with its revert reason, attacks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from eth_abi import encode

from ledger.bindings import RegionMarket
from ledger.chain import LedgerClient
from ledger.chain.artifacts import Artifact, compile_source
from ledger.eip712 import HALF_N, Sig, quorum_sign
from ledger.errors import TransactionReverted
from ledger.records import Kind, LeaseIn, LeaseState, Role, Step, StepAction, chain_leases_hash

from .harness import EPOCH, ETH, REGION, ROOT, Market, make_market, with_price

GWEI = 10**9


@pytest.fixture
async def m() -> Market:
    return await make_market(protected_mask=0b1000_0000, num_channels=16)


async def spectrum_lease(
    m: Market,
    *,
    units: int = 1,
    first: int = 0,
    price: int = 10**15,
    slots: int = 1,
    buyer: str = "buyer",
    seller: str = "seller",
    start: int | None = None,
) -> LeaseIn:
    start = start if start is not None else await m.slot_start()
    offer = m.offer(seller, start=start, end=start + 10 * EPOCH)
    bid = m.bid(buyer, units=units, start=start, end=start + slots * EPOCH)
    return m.lease(offer, bid, first=first, price_wei=price, offer_key=seller, bid_key=buyer)


async def compute_lease(
    m: Market,
    *,
    units: int = 2,
    capacity: int = 4,
    price: int = 10**15,
    buyer: str = "buyer",
    nonce: int = 9,
) -> LeaseIn:
    start = await m.slot_start()
    offer = m.offer(
        kind=Kind.COMPUTE, lo=0, hi=capacity, start=start, end=start + EPOCH, nonce=nonce
    )
    bid = m.bid(buyer, kind=Kind.COMPUTE, lo=0, hi=0, units=units, start=start, end=start + EPOCH)
    return m.lease(offer, bid, price_wei=price, bid_key=buyer)


async def reverts(reason: str, action: Awaitable[object]) -> None:
    with pytest.raises(TransactionReverted) as err:
        await action
    assert err.value.reason == reason


# -- digests ----------------------------------------------------------------------------------
async def test_off_chain_digests_match_the_contract(m: Market):
    lease = await spectrum_lease(m)
    binding = m.market.binding
    assert await binding.call("offer_digest", lease.offer.as_abi()) == m.market.offer_digest(
        lease.offer
    )
    assert await binding.call("bid_digest", lease.bid.as_abi()) == m.market.bid_digest(lease.bid)
    assert await binding.call(
        "settlement_digest", 3, b"\1" * 32, b"\2" * 32, b"\4" * 32
    ) == m.market.settlement_digest(3, b"\1" * 32, b"\2" * 32, b"\4" * 32)
    assert await binding.call("lifecycle_digest", 5, b"\6" * 32) == m.market.lifecycle_digest(
        5, b"\6" * 32
    )
    who = m.addr("stranger")
    assert await binding.call("registration_digest", who, 3) == m.market.registration_digest(who, 3)
    members = [m.addr("seller"), m.addr("buyer")]
    assert await binding.call("rotation_digest", members, 1) == m.market.rotation_digest(
        members, 1, 0
    )
    assert await binding.call("mechanism_digest", 2, b"\3" * 32) == m.market.mechanism_digest(
        2, b"\3" * 32, 0
    )


async def test_settle_calldata_is_the_abi_encoding(m: Market):
    """The word-by-word settle calldata equals eth_abi's encoding of the contract's ABI."""
    leases = [
        await spectrum_lease(m),
        await spectrum_lease(m, units=2, first=3, buyer="buyer2", seller="seller2"),
        await compute_lease(m),
    ]
    records = [lease.record(1, REGION) for lease in leases]
    steps = [
        Step(records[0], heartbeat_at=123, action=StepAction.COMPLETE, party=records[0].buyer),
        Step(records[2], action=StepAction.EXPIRE),
    ]
    for batch, some in (([], []), (leases[:1], steps[:1]), (leases, steps)):
        sigs = m.committee_sigs(4, batch)
        h, sh = b"\5" * 32, b"\6" * 32
        expected = m.market.binding.encode(
            "settle",
            4,
            b"\7" * 32,
            h,
            sh,
            [x.as_abi() for x in batch],
            [_step_abi(s) for s in some],
            [x.as_tuple() for x in sigs],
        )
        assert m.market.settle_calldata(4, b"\7" * 32, h, batch, sigs, some, sh) == expected
        # each Step's words are its abi encoding, as the contract hashes it
        for s in some:
            assert s.words() == encode([_STEP_ABI], [_step_abi(s)])


_RECORD_ABI = (
    "(uint256,uint256,address,address,uint256,uint256,uint256,uint256,uint256,uint256,bytes32)"
)
_STEP_ABI = f"({_RECORD_ABI},uint256,uint256,uint256)"


def _step_abi(step: Step) -> tuple:
    return (step.record.as_abi(), step.heartbeat_at, int(step.action), int(step.party, 16))


async def test_logs_decode_as_web3_decodes_them(m: Market):
    """decode_log (word by word, or eth_abi for address[]) gives web3's process_log args
    for every event the market emitted: joins, a settlement, a committee rotation."""
    await m.settle(1, [await spectrum_lease(m), await compute_lease(m)])
    members = sorted((m.addr(n) for n in ("seller2", "buyer2")), key=str.lower)
    digest = m.market.rotation_digest(members, 1, 0)
    sigs = [s.as_tuple() for s in quorum_sign(digest, m.committee[:2])]
    await m.market.binding.transact("rotate_committee", members, 1, sigs, gas=500_000)
    binding = m.market.binding
    logs = await binding.client.web3.eth.get_logs({"address": binding.address, "fromBlock": 0})
    names = set()
    for log in logs:
        ours = binding.decode_log(log)
        assert ours is not None
        theirs = getattr(binding.contract.events, ours.name)().process_log(log)
        assert ours.args == dict(theirs["args"])
        assert list(ours.args) == list(theirs["args"])
        names.add(ours.name)
    assert {"Registered", "LeaseActivated", "Settled", "CommitteeRotated"} <= names


def test_bid_digest_matches_eth_account_typed_data():
    """Our hand-rolled EIP-712 hashing equals eth-account's generic encoder."""
    from eth_account.messages import encode_typed_data
    from eth_utils import keccak

    from ledger.eip712 import domain_separator, typed_digest
    from ledger.records import Bid

    bid = Bid("0x" + "11" * 20, 0, 2, 9, 3, 120, 240, 5 * 10**15, 4)
    contract = "0x" + "22" * 20
    typed = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "Bid": [
                    {"name": n, "type": t}
                    for n, t in [
                        ("region", "uint256"),
                        ("buyer", "address"),
                        ("kind", "uint256"),
                        ("lo", "uint256"),
                        ("hi", "uint256"),
                        ("units", "uint256"),
                        ("start", "uint256"),
                        ("end", "uint256"),
                        ("maxPriceWei", "uint256"),
                        ("nonce", "uint256"),
                    ]
                ],
            },
            "primaryType": "Bid",
            "domain": {
                "name": "specledger RegionMarket",
                "version": "1",
                "chainId": 5,
                "verifyingContract": contract,
            },
            "message": {
                "region": 7,
                "buyer": bid.buyer,
                "kind": 0,
                "lo": 2,
                "hi": 9,
                "units": 3,
                "start": 120,
                "end": 240,
                "maxPriceWei": 5 * 10**15,
                "nonce": 4,
            },
        }
    )
    expected = keccak(b"\x19" + typed.version + typed.header + typed.body)
    ours = typed_digest(
        domain_separator("specledger RegionMarket", 5, contract), bid.struct_hash(7)
    )
    assert ours == expected


# -- participants and escrow ---------------------------------------------------------------
async def test_register_deposit_withdraw(m: Market):
    stranger = m.as_("stranger")
    receipt = await stranger.register(Role.EDGE_DEVICE)
    assert receipt.event("Registered").args["role"] == Role.EDGE_DEVICE
    await stranger.deposit(3 * ETH)
    before = await stranger.binding.client.balance()
    receipt = await stranger.withdraw(ETH)
    assert receipt.event("Withdrawn").args["free_wei"] == 2 * ETH
    assert await m.market.binding.call("free", m.addr("stranger")) == 2 * ETH
    assert await stranger.binding.client.balance() > before + ETH - 10**16  # minus gas
    assert await m.market.escrow_conserved()


@pytest.mark.parametrize(
    ("who", "action", "reason"),
    [
        ("stranger", lambda v: v.deposit(ETH), "register before depositing"),
        ("buyer", lambda v: v.withdraw(11 * ETH), "withdrawal exceeds free balance"),
        ("buyer", lambda v: v.withdraw(0), "withdrawal must be positive"),
        ("buyer", lambda v: v.register(Role.COORDINATOR), "already registered"),
        ("stranger", lambda v: v.register(9), "unknown role"),
        ("buyer", lambda v: v.post_bond(ETH), "only sellers post bonds"),
        (
            "seller",
            lambda v: v.binding.transact("withdraw_bond", gas=100_000),
            "request_bond_exit first",
        ),
        ("buyer", lambda v: v.binding.transact("request_bond_exit", gas=100_000), "no bond"),
    ],
    ids=[
        "deposit-unregistered",
        "withdraw-beyond-free",
        "withdraw-zero",
        "register-twice",
        "unknown-role",
        "bond-by-buyer",
        "bond-withdraw-without-exit",
        "bond-exit-no-bond",
    ],
)
async def test_escrow_rejections(
    m: Market, who: str, action: Callable[[RegionMarket], Awaitable[object]], reason: str
):
    await reverts(reason, action(m.as_(who)))
    assert await m.market.escrow_conserved()


async def test_bond_exit_waits_for_the_notice_period(m: Market):
    seller = m.as_("seller")
    receipt = await seller.binding.transact("request_bond_exit", gas=100_000)
    at = receipt.event("BondExitRequested").args["withdrawable_at"]
    await reverts(
        "bond notice period not over", seller.binding.transact("withdraw_bond", gas=100_000)
    )
    lease = await spectrum_lease(m)
    await reverts("seller is leaving (bond exit pending)", m.settle(1, [lease]))
    await m.travel(at)
    receipt = await seller.binding.transact("withdraw_bond", gas=100_000)
    assert receipt.event("BondWithdrawn").args["amount_wei"] == ETH
    assert await m.market.binding.call("bond", m.addr("seller")) == 0
    assert await m.market.escrow_conserved()


async def test_withdrawal_cannot_reenter(m: Market, tmp_path: Path):
    src = Path(__file__).with_name("Reentrant.vy")
    data = compile_source(src)
    artifact = Artifact(
        "Reentrant",
        data["abi"],
        bytes.fromhex(data["bytecode"][2:]),
        bytes.fromhex(data["bytecode_runtime"][2:]),
        data["source_sha256"],
        data["compiler_version"],
    )
    client = LedgerClient(m.backend, m.keys["stranger"])
    attacker = await client.deploy(artifact, m.market.address)
    await attacker.transact("attack", ETH, value=2 * ETH, gas=500_000)
    assert await attacker.call("reentry_attempted") is True
    assert await attacker.call("reentry_succeeded") is False
    assert await m.market.binding.call("free", attacker.address) == ETH  # one withdrawal only
    assert await m.backend.web3.eth.get_balance(attacker.address) == ETH
    assert await m.market.escrow_conserved()


# -- settlement: success ----------------------------------------------------------------------
async def test_settle_records_spectrum_and_compute_leases(m: Market):
    spectrum = await spectrum_lease(m, units=3, first=2, price=4 * 10**15)
    compute = await compute_lease(m, units=2, price=10**15)
    records = await m.settle(1, [spectrum, compute])
    assert await m.market.binding.call("free", m.addr("buyer")) == 10 * ETH - 5 * 10**15
    assert await m.market.binding.call("total_locked") == 5 * 10**15
    assert await m.market.binding.call("last_epoch") == 1
    for record in records:
        assert await m.market.lease_state(record.lease_id) == LeaseState.ACTIVE
    assert await m.market.binding.call("sold_units", compute.offer.struct_hash(REGION)) == 2
    slot = spectrum.bid.start // EPOCH
    assert await m.market.binding.call("occupancy", slot) == 0b11100
    assert await m.market.escrow_conserved()


async def test_settle_events_carry_every_lease_field(m: Market):
    lease = await spectrum_lease(m)
    await m.settle(1, [lease])
    from ledger.chain import LogIndex
    from ledger.records import LeaseRecord

    index = LogIndex(m.market.binding.client)
    index.watch(m.market.binding)
    await index.sync()
    (activated,) = index.of("LeaseActivated")
    assert LeaseRecord.from_event(activated.args) == lease.record(1, REGION)
    (settled,) = index.of("Settled")
    assert settled.args["leases"] == 1 and settled.args["signers"] == 2


async def test_empty_settlement_advances_the_epoch(m: Market):
    await m.settle(5, [])
    assert await m.market.binding.call("last_epoch") == 5


# -- settlement: rejections ------------------------------------------------------------------
async def _variant(m: Market, name: str) -> LeaseIn:
    """A lease that is wrong in exactly one way."""
    base = await spectrum_lease(m)
    start = base.bid.start
    offer, bid = base.offer, base.bid
    resign = m.lease  # re-sign the edited offer and bid honestly
    match name:
        case "price-above-max":
            return with_price(base, bid.max_price_wei + 1)
        case "price-below-reserve":
            return resign(replace(offer, reserve_wei=10**16), bid, price_wei=10**15)
        case "kind-mismatch":
            return resign(replace(offer, kind=int(Kind.COMPUTE)), bid)
        case "window-outside-offer":
            return resign(offer, replace(bid, end=offer.end + EPOCH))
        case "channels-outside-offer":
            return resign(replace(offer, lo=4, hi=6), bid, first=3)
        case "channels-outside-bid":
            return resign(offer, replace(bid, lo=0, hi=2), first=2)
        case "channels-outside-region":
            return resign(replace(offer, hi=40), replace(bid, hi=40, units=2), first=15)
        case "protected-band":
            return resign(offer, bid, first=7)
        case "not-slot-aligned":
            return resign(offer, replace(bid, start=start + 1))
        case "window-over":
            return resign(
                replace(offer, start=start - 10 * EPOCH),
                replace(bid, start=start - 10 * EPOCH, end=start - 9 * EPOCH),
            )
        case "empty-window":
            return resign(offer, replace(bid, end=start))
        case "zero-units":
            return resign(offer, replace(bid, units=0))
        case "too-long":
            long_end = start + 65 * EPOCH
            return resign(replace(offer, end=long_end), replace(bid, end=long_end))
        case "beyond-free-balance":
            return resign(offer, replace(bid, max_price_wei=100 * ETH), price_wei=11 * ETH)
        case "bid-forged":
            return replace(base, bid_sig=m.market.sign_bid(m.keys["stranger"], bid))
        case "offer-forged":
            return replace(base, offer_sig=m.market.sign_offer(m.keys["stranger"], offer))
        case "bid-for-another-region":
            other = RegionMarket(m.market.binding, REGION + 1, m.market.chain_id)
            return replace(base, bid_sig=other.sign_bid(m.keys["buyer"], bid))
        case "bid-for-another-chain":
            other = RegionMarket(m.market.binding, REGION, m.market.chain_id + 1)
            return replace(base, bid_sig=other.sign_bid(m.keys["buyer"], bid))
        case "malleable-bid-signature":
            sig = base.bid_sig
            high_s = (
                0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
                - int.from_bytes(sig.s, "big")
            )
            assert high_s > HALF_N
            return replace(base, bid_sig=Sig(55 - sig.v, sig.r, high_s.to_bytes(32, "big")))
        case "seller-without-bond":
            await m.as_("stranger").register(Role.SATELLITE)
            stranger_offer = m.offer("stranger", start=start, end=start + EPOCH)
            return m.lease(stranger_offer, bid, offer_key="stranger")
    raise AssertionError(name)


REJECTIONS = {
    "price-above-max": "price above the bid's maximum",
    "price-below-reserve": "price below the offer's reserve",
    "kind-mismatch": "offer and bid are for different resources",
    "window-outside-offer": "lease window outside the offer",
    "channels-outside-offer": "channels outside the offer",
    "channels-outside-bid": "channels outside the bid",
    "channels-outside-region": "channels outside the region",
    "protected-band": "lease touches a protected band",
    "not-slot-aligned": "window not slot-aligned",
    "window-over": "lease window already over",
    "empty-window": "empty lease window",
    "zero-units": "bid for zero units",
    "too-long": "lease longer than MAX_SLOTS",
    "beyond-free-balance": "buyer's free balance below price",
    "bid-forged": "bid not signed by its buyer",
    "offer-forged": "offer not signed by its seller",
    "bid-for-another-region": "bid not signed by its buyer",
    "bid-for-another-chain": "bid not signed by its buyer",
    "malleable-bid-signature": "malleable signature",
    "seller-without-bond": "seller bond below minimum",
}


@pytest.mark.parametrize(("variant", "reason"), REJECTIONS.items(), ids=list(REJECTIONS))
async def test_settle_rejects_a_bad_lease(m: Market, variant: str, reason: str):
    lease = await _variant(m, variant)
    free_before = await m.market.binding.call("free", m.addr("buyer"))
    await reverts(reason, m.settle(1, [lease]))
    assert await m.market.binding.call("free", m.addr("buyer")) == free_before
    assert await m.market.binding.call("last_epoch") == 0
    assert await m.market.escrow_conserved()


async def test_overlapping_spectrum_leases_are_refused(m: Market):
    first = await spectrum_lease(m, units=3, first=0)
    second = await spectrum_lease(m, units=2, first=2, buyer="buyer2", seller="seller2")
    await reverts("spectrum lease overlaps another", m.settle(1, [first, second]))
    await m.settle(1, [first])
    # the same channels in a later slot are free; in the same slot, a later epoch still sees them
    await reverts("spectrum lease overlaps another", m.settle(2, [second]))
    later = await spectrum_lease(
        m, units=2, first=2, buyer="buyer2", seller="seller2", start=first.bid.end
    )
    await m.settle(2, [later])


async def test_compute_offer_is_never_sold_beyond_capacity(m: Market):
    a = await compute_lease(m, units=3, capacity=4)
    b = await compute_lease(m, units=2, capacity=4, buyer="buyer2")
    assert a.offer == b.offer
    await reverts("compute offer sold beyond capacity", m.settle(1, [a, b]))
    await m.settle(1, [a])
    await reverts("compute offer sold beyond capacity", m.settle(2, [b]))


async def test_each_lease_of_one_offer_carries_the_sellers_signature(m: Market):
    """The seller's signature is checked once per distinct (offer, signature) in a
    settlement; a later lease of the same offer with another signature is checked again."""
    a = await compute_lease(m, units=1, capacity=4)
    b = await compute_lease(m, units=1, capacity=4, buyer="buyer2")
    assert a.offer == b.offer and a.offer_sig == b.offer_sig
    sig = b.offer_sig
    for forged in (
        Sig(55 - sig.v, sig.r, sig.s),  # the same r and s, the other recovery id
        Sig(sig.v, sig.r, (int.from_bytes(sig.s, "big") - 1).to_bytes(32, "big")),
    ):
        await reverts(
            "offer not signed by its seller", m.settle(1, [a, replace(b, offer_sig=forged)])
        )
    await m.settle(1, [a, b])
    assert await m.market.binding.call("sold_units", a.offer.struct_hash(REGION)) == 2


async def test_settle_refuses_words_that_are_not_addresses_or_recovery_ids(m: Market):
    """The settlement's structs carry addresses and v as uint256 words (one calldata copy
    per lease); a word above 2**160 is no address and is refused before anything moves,
    as is a v other than 27 or 28."""
    lease = await spectrum_lease(m)
    sigs = m.committee_sigs(1, [lease])
    offer, offer_sig, bid, bid_sig, first, price = lease.as_abi()
    high = 1 << 160
    bad_seller = ((offer[0] + high, *offer[1:]), offer_sig, bid, bid_sig, first, price)
    bad_buyer = (offer, offer_sig, (bid[0] + high, *bid[1:]), bid_sig, first, price)
    bad_v = (offer, offer_sig, bid, (bid_sig[0] + 256, *bid_sig[1:]), first, price)
    free_before = await m.market.binding.call("free", m.addr("buyer"))
    for raw, reason in ((bad_seller, ""), (bad_buyer, ""), (bad_v, "invalid signature")):
        with pytest.raises(TransactionReverted) as err:
            await m.market.binding.transact(
                "settle",
                1,
                ROOT,
                chain_leases_hash([lease.record(1, REGION)]),
                bytes(32),
                [raw],
                [],
                [s.as_tuple() for s in sigs],
                gas=2_000_000,
            )
        assert err.value.reason == reason
    assert await m.market.binding.call("free", m.addr("buyer")) == free_before
    assert await m.market.binding.call("last_epoch") == 0
    await m.settle(1, [lease])  # the same lease, well formed, settles


async def test_bid_nonce_is_usable_once(m: Market):
    lease = await spectrum_lease(m)
    await m.settle(1, [lease])
    again = m.lease(lease.offer, replace(lease.bid, lo=0), first=5)  # same nonce, other channel
    await reverts("bid nonce already used", m.settle(2, [again]))
    await reverts(
        "bid nonce already used",
        m.settle(
            2,
            [
                m.lease(lease.offer, replace(lease.bid, nonce=77), first=9),
                m.lease(lease.offer, replace(lease.bid, nonce=77), first=10),
            ],
        ),
    )


# -- committee quorum ------------------------------------------------------------------------------
async def test_settlement_needs_a_quorum(m: Market):
    lease = await spectrum_lease(m)
    one = m.committee_sigs(1, [lease], signers=m.committee[:1])
    await reverts("fewer than threshold committee signatures", m.settle(1, [lease], sigs=one))
    duplicated = one + one
    await reverts(
        "committee signers not strictly increasing", m.settle(1, [lease], sigs=duplicated)
    )
    forged = m.committee_sigs(1, [lease], signers=[m.committee[0], m.keys["stranger"]])
    await reverts("signer is not in the committee", m.settle(1, [lease], sigs=forged))
    # signatures over another result (another price) recover to strangers
    other = m.committee_sigs(1, [with_price(lease, 2 * 10**15)])
    await reverts("signer is not in the committee", m.settle(1, [lease], sigs=other))
    wrong_root = m.committee_sigs(1, [lease], root=b"\x01" * 32)
    await reverts("signer is not in the committee", m.settle(1, [lease], sigs=wrong_root))
    await m.settle(1, [lease], sigs=m.committee_sigs(1, [lease], signers=m.committee))


async def test_replayed_epoch_is_refused(m: Market):
    lease = await spectrum_lease(m)
    sigs = m.committee_sigs(3, [lease])
    await m.settle(3, [lease], sigs=sigs)
    await reverts("epoch not after the last settled one", m.settle(3, [lease], sigs=sigs))
    await reverts("epoch not after the last settled one", m.settle(2, []))


async def test_committee_rotation_and_mechanism_change_need_the_current_quorum(m: Market):
    new = [m.keys["seller2"], m.keys["buyer2"], m.keys["stranger"]]
    members = sorted((m.addr(n) for n in ("seller2", "buyer2", "stranger")), key=str.lower)
    digest = m.market.rotation_digest(members, 2, 0)
    outsiders = quorum_sign(digest, new[:2])
    await reverts(
        "signer is not in the committee",
        m.market.binding.transact(
            "rotate_committee", members, 2, [s.as_tuple() for s in outsiders], gas=500_000
        ),
    )
    receipt = await m.market.binding.transact(
        "rotate_committee",
        members,
        2,
        [s.as_tuple() for s in quorum_sign(digest, m.committee[:2])],
        gas=500_000,
    )
    assert receipt.event("CommitteeRotated").args["config_nonce"] == 1
    # the old committee is out: its signatures no longer settle anything
    lease = await spectrum_lease(m)
    await reverts("signer is not in the committee", m.settle(1, [lease]))
    await m.settle(1, [lease], sigs=m.committee_sigs(1, [lease], signers=new[:2]))
    # a mechanism change signed for the old config nonce is a replay
    stale = quorum_sign(m.market.mechanism_digest(3, b"\x09" * 32, 0), new[:2])
    await reverts(
        "signer is not in the committee",
        m.market.binding.transact(
            "set_mechanism", 3, b"\x09" * 32, [s.as_tuple() for s in stale], gas=300_000
        ),
    )
    fresh = quorum_sign(m.market.mechanism_digest(3, b"\x09" * 32, 1), new[:2])
    receipt = await m.market.binding.transact(
        "set_mechanism", 3, b"\x09" * 32, [s.as_tuple() for s in fresh], gas=300_000
    )
    assert receipt.event("MechanismChanged").args["mechanism_id"] == 3
    assert await m.market.binding.call("mechanism_id") == 3


# -- lease lifecycle ---------------------------------------------------------------------------
async def settled(m: Market, price: int = 6 * 10**15, slots: int = 6):
    lease = await spectrum_lease(m, price=price, slots=slots)
    (record,) = await m.settle(1, [lease])
    return record


async def test_heartbeats_only_from_the_parties(m: Market):
    record = await settled(m)
    receipt = await m.as_("seller").lifecycle("heartbeat", record)
    assert receipt.event("Heartbeat").args["sender"] == m.addr("seller")
    await m.as_("buyer").lifecycle("heartbeat", record)
    await reverts(
        "only the lease's parties send heartbeats", m.as_("stranger").lifecycle("heartbeat", record)
    )


async def test_buyer_completes_early_and_seller_is_paid(m: Market):
    record = await settled(m)
    receipt = await m.as_("buyer").lifecycle("complete", record)
    assert receipt.event("LeaseCompleted").args["paid_seller_wei"] == record.price_wei
    assert await m.market.binding.call("free", m.addr("seller")) == record.price_wei
    assert await m.market.lease_state(record.lease_id) == LeaseState.COMPLETED
    await reverts("lease is not active", m.as_("buyer").lifecycle("complete", record))
    assert await m.market.escrow_conserved()


async def test_seller_completes_after_the_end_within_the_claim_window(m: Market):
    record = await settled(m)
    await reverts("lease has not ended", m.as_("seller").lifecycle("complete", record))
    await reverts(
        "only the lease's parties complete it", m.as_("stranger").lifecycle("complete", record)
    )
    await m.travel(record.end)
    await m.as_("seller").lifecycle("complete", record)
    assert await m.market.binding.call("total_locked") == 0


async def test_relinquish_refunds_the_unused_share(m: Market):
    record = await settled(m, price=6 * 10**15, slots=6)
    await reverts("only the buyer relinquishes", m.as_("seller").lifecycle("relinquish", record))
    await m.travel(record.start + 2 * EPOCH - 1)  # the relinquish block is one second later
    receipt = await m.as_("buyer").lifecycle("relinquish", record)
    args = receipt.event("LeaseRelinquished").args
    assert (args["paid_seller_wei"], args["refund_buyer_wei"]) == (2 * 10**15, 4 * 10**15)
    assert await m.market.lease_state(record.lease_id) == LeaseState.RELINQUISHED
    assert await m.market.escrow_conserved()


async def test_missed_heartbeat_defaults_and_slashes(m: Market):
    record = await settled(m)
    await m.travel(record.start + 60)
    await m.as_("seller").lifecycle("heartbeat", record)
    await reverts(
        "seller's heartbeat is not overdue", m.as_("buyer").lifecycle("report_default", record)
    )
    await reverts(
        "only the buyer or the committee reports defaults",
        m.as_("stranger").lifecycle("report_default", record),
    )
    await m.travel(record.start + 60 + 121)
    free_before = await m.market.binding.call("free", m.addr("buyer"))
    receipt = await m.as_("buyer").lifecycle("report_default", record)
    slashed = receipt.event("LeaseDefaulted").args["slashed_bond_wei"]
    assert slashed == record.price_wei
    assert (
        await m.market.binding.call("free", m.addr("buyer"))
        == free_before + record.price_wei + slashed
    )
    assert await m.market.binding.call("bond", m.addr("seller")) == ETH - slashed
    assert await m.market.lease_state(record.lease_id) == LeaseState.DEFAULTED
    assert await m.market.escrow_conserved()


async def test_unclaimed_lease_expires_to_the_buyer(m: Market):
    record = await settled(m)
    await reverts("claim window still open", m.as_("stranger").lifecycle("expire", record))
    await m.travel(record.end + 600)
    await reverts("claim window over: expire it", m.as_("seller").lifecycle("complete", record))
    receipt = await m.as_("stranger").lifecycle("expire", record)
    assert receipt.event("LeaseExpired").args["refund_buyer_wei"] == record.price_wei
    assert await m.market.lease_state(record.lease_id) == LeaseState.EXPIRED


async def test_lifecycle_needs_the_exact_record(m: Market):
    record = await settled(m)
    await reverts(
        "lease record does not match",
        m.as_("buyer").lifecycle("complete", replace(record, price_wei=1)),
    )
    await reverts("no such lease", m.as_("buyer").lifecycle("complete", replace(record, nonce=999)))


async def test_compute_of_another_class_is_refused(m: Market):
    start = await m.slot_start()
    server_offer = m.offer(kind=Kind.COMPUTE, lo=1, hi=4, start=start, end=start + EPOCH)
    device_bid = m.bid(kind=Kind.COMPUTE, lo=0, hi=0, units=1, start=start, end=start + EPOCH)
    await reverts("compute class differs", m.settle(1, [m.lease(server_offer, device_bid)]))
    server_bid = m.bid(kind=Kind.COMPUTE, lo=1, hi=0, units=1, start=start, end=start + EPOCH)
    await m.settle(1, [m.lease(server_offer, server_bid)])


# -- the remaining rejections, one each -------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"num_channels": 0}, "num_channels must be 1..256"),
        ({"epoch_length_s": 0}, "epoch_length_s must be positive"),
        ({"channel_width_hz": 0}, "channel_width_hz must be positive"),
        ({"threshold": 0}, "threshold must be 1..committee size"),
        ({"committee": ("0x" + "00" * 20, "0x" + "00" * 20)}, "empty committee member"),
        ({"committee": ("0x" + "11" * 20, "0x" + "11" * 20)}, "duplicate committee member"),
    ],
    ids=[
        "no-channels",
        "no-epoch",
        "no-width",
        "zero-threshold",
        "empty-member",
        "duplicate-member",
    ],
)
async def test_constructor_rejections(m: Market, kwargs: dict, reason: str):
    from ledger.config import RegionConfig

    committee = kwargs.pop("committee", ("0x" + "11" * 20, "0x" + "22" * 20))
    base = RegionConfig(region_id=1, committee_size=2, threshold=1)
    config = object.__new__(RegionConfig)  # skip RegionConfig's own checks: test the contract's
    for field_name, value in {**base.__dict__, **kwargs}.items():
        object.__setattr__(config, field_name, value)
    await reverts(
        reason,
        m.market.binding.client.deploy(
            "RegionMarket", *config.constructor_args(committee), gas=6_000_000
        ),
    )


async def test_zero_value_deposits_and_bonds_are_refused(m: Market):
    await reverts(
        "deposit must be positive", m.as_("buyer").binding.transact("deposit", value=0, gas=100_000)
    )
    await reverts(
        "bond must be positive", m.as_("seller").binding.transact("post_bond", value=0, gas=100_000)
    )


async def test_compute_lease_with_a_channel_is_refused(m: Market):
    lease = await compute_lease(m)
    await reverts("compute leases have no channel", m.settle(1, [replace(lease, first=3)]))


async def test_invalid_committee_signature_is_refused(m: Market):
    lease = await spectrum_lease(m)
    sigs = m.committee_sigs(1, [lease])
    broken = [Sig(sigs[0].v, b"\0" * 32, sigs[0].s), sigs[1]]
    await reverts("invalid signature", m.settle(1, [lease], sigs=broken))


async def test_relinquish_after_the_end_is_refused(m: Market):
    record = await settled(m)
    await m.travel(record.end)
    await reverts("lease has ended: complete it", m.as_("buyer").lifecycle("relinquish", record))
