"""RootLedger: region registry, checkpoints with Merkle proofs, jobs, cross-region leases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.bindings import RootLedger
from ledger.chain import LedgerClient, dev_keys
from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.eip712 import quorum_sign
from ledger.errors import TransactionReverted
from ledger.merkle import EMPTY_ROOT, LeaseTree, verify_proof
from ledger.records import CrossState

from .harness import GENESIS, address

ETH = 10**18
KEYS = dev_keys(10)
ROOT_COMMITTEE = KEYS[1:4]
REGION_COMMITTEE = KEYS[4:7]


@pytest.fixture
async def root() -> RootLedger:
    backend = EmbeddedBackend(None, chain_id=31_337, genesis_timestamp=GENESIS)
    client = LedgerClient(backend, KEYS[0])
    ledger = await RootLedger.deploy(client, [address(k) for k in ROOT_COMMITTEE], 2)
    await ledger.register_region(
        1,
        32_001,
        "0x" + "aa" * 20,
        [address(k) for k in REGION_COMMITTEE],
        2,
        0,
        ROOT_COMMITTEE[:2],
    )
    await ledger.register_region(
        2,
        32_002,
        "0x" + "bb" * 20,
        [address(k) for k in REGION_COMMITTEE],
        2,
        1,
        ROOT_COMMITTEE[:2],
    )
    return ledger


async def reverts(reason: str, action) -> None:
    with pytest.raises(TransactionReverted) as err:
        await action
    assert err.value.reason == reason


def as_(root: RootLedger, key: bytes) -> RootLedger:
    return root.as_client(LedgerClient(root.binding.client.backend, key))


# -- region registry -------------------------------------------------------------------------
async def test_region_registry(root: RootLedger):
    region = await root.binding.call("regions", 1)
    assert region[0] == 32_001 and region[2] == 2 and region[4] is True
    assert await root.binding.call("region_committee", 2) == [address(k) for k in REGION_COMMITTEE]
    # a change: a new mechanism for region 2 only
    await root.register_region(
        2,
        32_002,
        "0x" + "bb" * 20,
        [address(k) for k in REGION_COMMITTEE],
        2,
        3,
        ROOT_COMMITTEE[1:],
    )
    assert (await root.binding.call("regions", 2))[3] == 3
    assert (await root.binding.call("regions", 1))[3] == 0


async def test_region_change_needs_the_root_quorum(root: RootLedger):
    with pytest.raises(TransactionReverted, match="signer is not in the root committee"):
        await root.register_region(
            3, 32_003, "0x" + "cc" * 20, [address(KEYS[0])], 1, 0, [KEYS[8], KEYS[9]]
        )
    with pytest.raises(TransactionReverted, match="fewer than threshold root signatures"):
        await root.register_region(
            3, 32_003, "0x" + "cc" * 20, [address(KEYS[0])], 1, 0, ROOT_COMMITTEE[:1]
        )


# -- checkpoints and proofs -------------------------------------------------------------------
def region_sigs(
    root: RootLedger,
    region: int,
    number: int,
    block_hash: bytes,
    lease_root: bytes,
    keys=REGION_COMMITTEE[:2],
):
    return quorum_sign(root.checkpoint_digest(region, number, block_hash, lease_root), keys)


async def test_checkpoint_and_lease_proof(root: RootLedger):
    leases = {bytes([i]) * 32: (i << 8) | 1 for i in range(1, 8)}
    tree = LeaseTree(leases)
    block_hash = b"\x77" * 32
    receipt = await root.post_checkpoint(
        1, 100, block_hash, tree.root, region_sigs(root, 1, 100, block_hash, tree.root)
    )
    assert receipt.event("CheckpointPosted").args["index"] == 0
    for lease_id, word in leases.items():
        assert await root.verify_lease(1, 0, lease_id, word, tree.proof(lease_id))
    some_id = next(iter(leases))
    assert not await root.verify_lease(1, 0, some_id, leases[some_id] + 1, tree.proof(some_id))
    with pytest.raises(TransactionReverted, match="no such checkpoint"):
        await root.verify_lease(1, 1, some_id, leases[some_id], tree.proof(some_id))


async def test_checkpoints_need_quorum_and_increasing_blocks(root: RootLedger):
    h, r = b"\x01" * 32, b"\x02" * 32
    await reverts(
        "fewer than threshold region signatures",
        root.post_checkpoint(1, 10, h, r, region_sigs(root, 1, 10, h, r, REGION_COMMITTEE[:1])),
    )
    await reverts(
        "signer is not in the region committee",
        root.post_checkpoint(1, 10, h, r, region_sigs(root, 2, 10, h, r)),
    )  # for region 2
    await reverts(
        "unknown region", root.post_checkpoint(9, 10, h, r, region_sigs(root, 9, 10, h, r))
    )
    await root.post_checkpoint(1, 10, h, r, region_sigs(root, 1, 10, h, r))
    await reverts(
        "checkpoint block not after the last one",
        root.post_checkpoint(1, 10, h, r, region_sigs(root, 1, 10, h, r)),
    )


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=32, max_size=32), st.integers(0, 2**256 - 1), max_size=40)
)
def test_merkle_proofs_verify_off_chain(leases: dict[bytes, int]):
    tree = LeaseTree(leases)
    if not leases:
        assert tree.root == EMPTY_ROOT
    for lease_id, word in leases.items():
        assert verify_proof(tree.root, lease_id, word, tree.proof(lease_id))
        assert not verify_proof(tree.root, lease_id, word ^ 1, tree.proof(lease_id))


# -- training jobs --------------------------------------------------------------------------------
async def test_job_lifecycle(root: RootLedger):
    coordinator = as_(root, KEYS[7])
    payee = address(KEYS[8])
    receipt = await coordinator.binding.transact(
        "post_job", b"\x05" * 32, 3, payee, value=3 * ETH, gas=300_000
    )
    job = receipt.event("JobPosted").args["job_id"]
    before = await root.binding.client.balance(payee)
    await coordinator.binding.transact(
        "confirm_round", job, 0, b"\x0a" * 32, b"\x0b" * 32, ETH, gas=200_000
    )
    assert await root.binding.client.balance(payee) == before + ETH
    await reverts(
        "rounds must be confirmed in order",
        coordinator.binding.transact(
            "confirm_round", job, 2, b"\0" * 32, b"\0" * 32, 0, gas=200_000
        ),
    )
    await reverts(
        "only the job's coordinator confirms rounds",
        root.binding.transact("confirm_round", job, 1, b"\0" * 32, b"\0" * 32, 0, gas=200_000),
    )
    await reverts(
        "round spends beyond the budget",
        coordinator.binding.transact(
            "confirm_round", job, 1, b"\0" * 32, b"\0" * 32, 3 * ETH, gas=200_000
        ),
    )
    receipt = await coordinator.binding.transact("close_job", job, gas=200_000)
    assert receipt.event("JobClosed").args["refund_wei"] == 2 * ETH
    await reverts("job is not open", coordinator.binding.transact("close_job", job, gas=200_000))
    assert await root.binding.call("escrow_conserved")


async def test_job_rejections(root: RootLedger):
    await reverts(
        "a job needs a budget",
        root.binding.transact("post_job", b"\0" * 32, 1, address(KEYS[8]), gas=300_000),
    )
    await reverts(
        "a job needs at least one round",
        root.binding.transact("post_job", b"\0" * 32, 0, address(KEYS[8]), value=1, gas=300_000),
    )


# -- cross-region leases ---------------------------------------------------------------------------
async def prepared(root: RootLedger, xid: bytes = b"\x33" * 32, regions=(1, 2)) -> int:
    now = (await root.binding.client.web3.eth.get_block("latest"))["timestamp"]
    deadline = now + 100
    await root.binding.transact(
        "prepare_cross",
        xid,
        list(regions),
        [bytes([r]) * 32 for r in regions],
        deadline,
        gas=400_000,
    )
    return deadline


async def vote(root: RootLedger, xid: bytes, region: int, commit: bool, keys=None):
    sigs = quorum_sign(root.vote_digest(xid, region, commit), keys or REGION_COMMITTEE[:2])
    return await root.binding.transact(
        "vote_cross", xid, region, commit, [s.as_tuple() for s in sigs], gas=300_000
    )


async def test_cross_region_lease_commits_when_all_regions_commit(root: RootLedger):
    xid = b"\x33" * 32
    await prepared(root, xid)
    await vote(root, xid, 1, True)
    assert await root.cross_state(xid) == CrossState.PREPARED
    await reverts("region already voted", vote(root, xid, 1, True))
    receipt = await vote(root, xid, 2, True)
    assert receipt.event("CrossCommitted")
    assert await root.cross_state(xid) == CrossState.COMMITTED
    await reverts(
        "cross-region lease is not prepared", root.binding.transact("abort_cross", xid, gas=100_000)
    )


async def test_cross_region_lease_aborts_on_refusal_or_deadline(root: RootLedger):
    refused, silent = b"\x01" * 32, b"\x02" * 32
    await prepared(root, refused)
    await vote(root, refused, 1, True)
    await vote(root, refused, 2, False)
    assert await root.cross_state(refused) == CrossState.ABORTED

    deadline = await prepared(root, silent)
    await vote(root, silent, 1, True)  # region 2 never answers
    await reverts("deadline not reached", root.binding.transact("abort_cross", silent, gas=100_000))
    await root.binding.client.backend.mine(deadline)
    await reverts("deadline passed", vote(root, silent, 2, True))
    await root.binding.transact("abort_cross", silent, gas=100_000)
    assert await root.cross_state(silent) == CrossState.ABORTED


async def test_cross_region_rejections(root: RootLedger):
    xid = b"\x55" * 32
    await reverts(
        "a cross-region lease spans at least two regions",
        root.binding.transact("prepare_cross", xid, [1], [b"\0" * 32], 2**40, gas=300_000),
    )
    await reverts(
        "region listed twice",
        root.binding.transact("prepare_cross", xid, [1, 1], [b"\0" * 32] * 2, 2**40, gas=300_000),
    )
    await reverts(
        "unknown region",
        root.binding.transact("prepare_cross", xid, [1, 9], [b"\0" * 32] * 2, 2**40, gas=300_000),
    )
    await prepared(root, xid)
    await reverts(
        "cross-region lease already exists",
        root.binding.transact("prepare_cross", xid, [1, 2], [b"\0" * 32] * 2, 2**40, gas=300_000),
    )
    await reverts(
        "signer is not in the region committee", vote(root, xid, 1, True, keys=[KEYS[8], KEYS[9]])
    )


async def test_remaining_root_rejections(root: RootLedger):
    members = [address(k) for k in REGION_COMMITTEE]
    with pytest.raises(TransactionReverted, match="threshold must be 1..committee size"):
        await root.register_region(5, 32_005, "0x" + "dd" * 20, members, 4, 0, ROOT_COMMITTEE[:2])
    with pytest.raises(TransactionReverted, match="duplicate committee member"):
        await root.register_region(
            5, 32_005, "0x" + "dd" * 20, members[:1] * 2, 1, 0, ROOT_COMMITTEE[:2]
        )
    for region in range(3, 17):  # fill the registry to MAX_REGIONS (16)
        await root.register_region(
            region, 32_000 + region, "0x" + "ee" * 20, members, 2, 0, ROOT_COMMITTEE[:2]
        )
    with pytest.raises(TransactionReverted, match="too many regions"):
        await root.register_region(99, 32_099, "0x" + "ee" * 20, members, 2, 0, ROOT_COMMITTEE[:2])
    xid = b"\x77" * 32
    await reverts(
        "one part per region",
        root.binding.transact("prepare_cross", xid, [1, 2], [b"\0" * 32], 2**40, gas=300_000),
    )
    await reverts(
        "deadline must be in the future",
        root.binding.transact("prepare_cross", xid, [1, 2], [b"\0" * 32] * 2, 1, gas=300_000),
    )
    await prepared(root, xid, regions=(1, 2))
    await reverts("region is not part of this lease", vote(root, xid, 3, True))
    await reverts(
        "payee must be set",
        root.binding.transact("post_job", b"\0" * 32, 1, "0x" + "00" * 20, value=1, gas=300_000),
    )
    coordinator = as_(root, KEYS[7])
    receipt = await coordinator.binding.transact(
        "post_job", b"\x05" * 32, 1, address(KEYS[8]), value=ETH, gas=300_000
    )
    job = receipt.event("JobPosted").args["job_id"]
    await coordinator.binding.transact(
        "confirm_round", job, 0, b"\1" * 32, b"\2" * 32, 0, gas=200_000
    )
    await reverts(
        "job has no more rounds",
        coordinator.binding.transact(
            "confirm_round", job, 1, b"\1" * 32, b"\2" * 32, 0, gas=200_000
        ),
    )
    await reverts(
        "only the job's coordinator closes it", root.binding.transact("close_job", job, gas=200_000)
    )
