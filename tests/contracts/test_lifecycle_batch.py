"""Lifecycle steps and joins in batches (RegionMarket's docstring): one transaction for
many, each keeping the rules of its one-transaction twin.

- ``lifecycle`` applies attested Steps (one per lease: the seller's heartbeat, then an
  action) under a quorum, in order, once (its nonce); a lease no longer active is
  skipped, the rest stands; a settlement carries steps in its first part only;
- ``join`` registers participants on their own signatures and pays their deposits and
  bonds from the sender, who can never take them out again.
"""

from __future__ import annotations

from eth_account import Account

from ledger.bench.lifecycle import lifecycle_gas
from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.eip712 import quorum_sign
from ledger.records import (
    Joiner,
    LeaseRecord,
    LeaseState,
    Role,
    Step,
    StepAction,
    chain_leases_hash,
    chain_steps_hash,
)

from .harness import ETH, REGION, ROOT, Market, make_market
from .test_region_market import compute_lease, reverts, spectrum_lease

C = StepAction


async def _settled(m: Market, epoch: int = 1, **kw: object) -> LeaseRecord:
    return (await m.settle(epoch, [await spectrum_lease(m, **kw)]))[0]  # type: ignore[arg-type]


async def _state(m: Market, record: LeaseRecord) -> LeaseState:
    return await m.market.lease_state(record.lease_id)


async def test_one_step_carries_the_heartbeat_and_the_completion():
    m = await make_market()
    record = await _settled(m)
    await m.travel(record.start + 10)
    seller_free = await m.market.binding.call("free", record.seller)
    receipt = await m.apply_steps([Step(record, record.start + 5, C.COMPLETE, record.buyer)])
    assert await _state(m, record) == LeaseState.COMPLETED
    assert await m.market.binding.call("last_heartbeat", record.lease_id) == record.start + 5
    paid = await m.market.binding.call("free", record.seller) - seller_free
    assert paid == record.price_wei
    names = [e.name for e in receipt.events]
    assert names == ["Heartbeat", "LeaseCompleted", "LifecycleBatch"]
    assert await m.market.escrow_conserved()


async def test_each_step_keeps_its_one_transaction_rules():
    m = await make_market()
    record = await _settled(m)
    await m.travel(record.start + 10)  # the lease runs until start + EPOCH
    cases = [
        (Step(record, action=C.COMPLETE, party=record.seller), "lease has not ended"),
        (Step(record, action=C.RELINQUISH, party=record.seller), "only the buyer relinquishes"),
        (
            Step(record, action=C.COMPLETE, party=m.addr("stranger")),
            "only the lease's parties complete it",
        ),
        (Step(record, heartbeat_at=record.start + 10**6), "heartbeat from the future"),
        (Step(record, action=C.EXPIRE), "claim window still open"),
        (Step(record, action=C.DEFAULT), "seller's heartbeat is not overdue"),
        (Step(record, action=9), "unknown lifecycle step"),
        (Step(record), "unknown lifecycle step"),  # neither a heartbeat nor an action
    ]
    for step, reason in cases:
        await reverts(reason, m.apply_steps([step]))
    # a heartbeat in the same step keeps the seller from being reported later
    await m.travel(record.start + 130)  # past start + heartbeat interval (120 s)
    await reverts(
        "seller's heartbeat is not overdue",
        m.apply_steps([Step(record, record.start + 100, C.DEFAULT)]),
    )
    bond = await m.market.binding.call("bond", record.seller)
    await m.apply_steps([Step(record, action=C.DEFAULT)])  # none sent: overdue, slashed
    assert await _state(m, record) == LeaseState.DEFAULTED
    assert await m.market.binding.call("bond", record.seller) == bond - record.price_wei
    assert await m.market.escrow_conserved()


async def test_a_lease_that_ended_meanwhile_is_skipped_and_the_rest_stands():
    m = await make_market()
    first = await spectrum_lease(m)
    second = await compute_lease(m, buyer="buyer2")
    a, b = await m.settle(1, [first, second])
    await m.travel(a.start + 10)
    await m.as_("buyer").lifecycle("complete", a)  # the buyer acted alone
    receipt = await m.apply_steps(
        [Step(a, action=C.COMPLETE, party=a.buyer), Step(b, action=C.COMPLETE, party=b.buyer)]
    )
    skipped = receipt.event("StepSkipped").args
    assert skipped["lease_id"] == a.lease_id and skipped["state"] == LeaseState.COMPLETED
    assert await _state(m, b) == LeaseState.COMPLETED
    assert await m.market.escrow_conserved()


async def test_a_batch_needs_a_quorum_over_exactly_its_steps_and_lands_once():
    m = await make_market()
    record = await _settled(m)
    await m.travel(record.start + 10)
    step = Step(record, action=C.COMPLETE, party=record.buyer)
    await reverts(
        "fewer than threshold committee signatures",
        m.apply_steps([step], signers=m.committee[:1]),
    )
    # signatures over other steps (a relinquishment) do not carry a completion
    nonce = await m.market.lifecycle_nonce()
    other = chain_steps_hash([Step(record, action=C.RELINQUISH, party=record.buyer)])
    sigs = quorum_sign(m.market.lifecycle_digest(nonce, other), m.committee[:2])
    await reverts("signer is not in the committee", m.market.apply_steps([step], sigs))
    sigs = quorum_sign(m.market.lifecycle_digest(nonce, chain_steps_hash([step])), m.committee[:2])
    await m.market.apply_steps([step], sigs)
    assert await m.market.lifecycle_nonce() == nonce + 1
    # the same batch again: its signatures are for a nonce already used
    await reverts("signer is not in the committee", m.market.apply_steps([step], sigs))


async def test_a_settlement_carries_steps_in_its_first_part_only():
    m = await make_market()
    earlier = await _settled(m, epoch=1)
    await m.travel(earlier.start + 10)
    start = await m.slot_start(2)
    leases = [
        await spectrum_lease(m, start=start),
        await spectrum_lease(m, start=start, first=1, buyer="buyer2"),
    ]
    records = [lease.record(2, REGION) for lease in leases]
    leases_hash = chain_leases_hash(records)
    steps = (Step(earlier, earlier.start + 5, C.COMPLETE, earlier.buyer),)
    steps_hash = chain_steps_hash(steps)
    sigs = quorum_sign(
        m.market.settlement_digest(2, ROOT, leases_hash, steps_hash), m.committee[:2]
    )
    admin = m.as_("admin")
    await admin.settle(2, ROOT, leases_hash, leases[:1], sigs, steps=steps)
    assert await _state(m, earlier) == LeaseState.COMPLETED
    await reverts(
        "lifecycle steps ride on an epoch's first part only",
        admin.settle(2, ROOT, leases_hash, leases[1:], sigs, steps=steps),
    )
    await admin.settle(2, ROOT, leases_hash, leases[1:], sigs, steps_hash=steps_hash)
    assert await m.market.binding.call("epoch_state", 2) == 2  # sealed
    assert await m.market.escrow_conserved()


async def test_join_registers_funds_and_bonds_many_on_their_own_signatures():
    m = await make_market()
    keys = [(0x10 << 32 | i).to_bytes(32, "big") for i in range(3)]
    who = [Account.from_key(k).address for k in keys]
    market = m.as_("admin")
    joiners = [
        Joiner(
            who[0], Role.EDGE_DEVICE, 0, ETH // 10, market.sign_registration(keys[0], who[0], 3)
        ),
        Joiner(who[1], Role.COORDINATOR, ETH, 0, market.sign_registration(keys[1], who[1], 5)),
        Joiner(m.addr("buyer"), 0, ETH // 2, 0),  # registered already: a top-up
    ]
    free_before = await market.binding.call("free", m.addr("buyer"))
    receipt = await market.join(joiners)
    assert [await market.binding.call("role", w) for w in who[:2]] == [3, 5]
    assert await market.binding.call("bond", who[0]) == ETH // 10
    assert await market.binding.call("free", who[1]) == ETH
    assert await market.binding.call("free", m.addr("buyer")) == free_before + ETH // 2
    assert {e.name for e in receipt.events} == {"Registered", "Deposited", "BondPosted"}
    assert await m.market.escrow_conserved()
    # a registration signed by someone else, or for another role, is refused
    forged = Joiner(who[2], Role.TERRESTRIAL, 0, 0, market.sign_registration(keys[0], who[2], 2))
    await reverts("registration not signed by its participant", market.join([forged]))
    wrong_role = Joiner(
        who[2], Role.TERRESTRIAL, 0, 0, market.sign_registration(keys[2], who[2], 3)
    )
    await reverts("registration not signed by its participant", market.join([wrong_role]))
    # what is sent must be exactly what goes into escrow
    short = Joiner(m.addr("buyer"), 0, 10, 0)
    await reverts(
        "value sent is not the sum of the deposits and bonds",
        market.binding.transact("join", [short.as_abi()], value=9, gas=300_000),
    )
    # only the owner takes its deposit out: the sponsor's own free balance is untouched
    assert await market.binding.call("free", m.addr("admin")) == 0
    await reverts("withdrawal exceeds free balance", market.withdraw(ETH))


async def test_lifecycle_gas_per_lease_meets_its_target():
    """``bench ledger``'s deterministic gas figures (ledger/bench/lifecycle.py): a lease
    settled, heartbeat and completed on a mixed book of 20 sellers and 100 buyers costs
    at most 75,000 gas in the epoch protocol, well under one transaction per step."""

    async def fresh():
        return EmbeddedBackend(None, chain_id=32_010, genesis_timestamp=1_900_000_000)

    gas = await lifecycle_gas(fresh)
    assert gas["lifecycle_gas_per_lease"] <= 75_000
    assert gas["lifecycle_gas_per_lease"] < 0.6 * gas["naive_lifecycle_gas_per_lease"]
    parts = gas["gas_per_lease_mixed"] + gas["steps_gas_per_lease"]
    assert abs(gas["lifecycle_gas_per_lease"] - parts) <= 1  # each rounded on its own
    assert gas["join_gas_per_agent"] < 80_000


async def test_a_relinquishment_in_a_batch_refunds_the_unused_share():
    m = await make_market()
    record = await _settled(m, slots=4)  # four slots of EPOCH seconds
    await m.travel(record.start + (record.end - record.start) // 4)
    buyer_free = await m.market.binding.call("free", record.buyer)
    receipt = await m.apply_steps([Step(record, action=C.RELINQUISH, party=record.buyer)])
    args = receipt.event("LeaseRelinquished").args
    now = int((await m.backend.web3.eth.get_block("latest"))["timestamp"])
    used = record.price_wei * (now - record.start) // (record.end - record.start)
    assert (args["refund_buyer_wei"], args["paid_seller_wei"]) == (record.price_wei - used, used)
    assert await m.market.binding.call("free", record.buyer) == buyer_free + record.price_wei - used
    assert await _state(m, record) == LeaseState.RELINQUISHED
    assert await m.market.escrow_conserved()
