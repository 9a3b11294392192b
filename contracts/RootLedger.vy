# pragma version ~=0.4.3
"""
@title RootLedger
@notice The tier-0 chain: the region registry, committee-signed shard
        checkpoints, training jobs, and leases that span several regions.

    Lease-state Merkle tree (the off-chain builder is ledger/merkle.py):
        leaf  = keccak256(0x00 ++ lease_id ++ bytes32(lease_word))
        node  = keccak256(0x01 ++ min(a, b) ++ max(a, b))      (sorted pair)
    leaves sorted by lease_id; an odd node at the end of a level is carried up
    unchanged; the root of an empty tree is bytes32(0). A proof is the list of
    sibling hashes from the leaf up.

    Cross-region lease states: 0 none, 1 prepared, 2 committed, 3 aborted.
    Job states: 0 none, 1 open, 2 closed.
"""

MAX_COMMITTEE: constant(uint256) = 32
MAX_REGIONS: constant(uint256) = 16
MAX_PROOF: constant(uint256) = 32
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

X_NONE: constant(uint256) = 0
X_PREPARED: constant(uint256) = 1
X_COMMITTED: constant(uint256) = 2
X_ABORTED: constant(uint256) = 3

JOB_OPEN: constant(uint256) = 1
JOB_CLOSED: constant(uint256) = 2

DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
REGION_TYPEHASH: constant(bytes32) = keccak256(
    "Region(uint256 region,uint256 shardChainId,address market,bytes32 membersHash,uint256 threshold,uint256 mechanismId,uint256 configNonce)"
)
CHECKPOINT_TYPEHASH: constant(bytes32) = keccak256(
    "Checkpoint(uint256 region,uint256 blockNumber,bytes32 blockHash,bytes32 leaseRoot)"
)
VOTE_TYPEHASH: constant(bytes32) = keccak256(
    "CrossVote(bytes32 xleaseId,uint256 region,bool commit)"
)


struct Sig:
    v: uint8
    r: bytes32
    s: bytes32

struct Region:
    shard_chain_id: uint256
    market: address
    threshold: uint256
    mechanism_id: uint256
    registered: bool

struct Checkpoint:
    block_number: uint256
    block_hash: bytes32
    lease_root: bytes32
    posted_at: uint256

struct Job:
    coordinator: address
    spec_hash: bytes32
    rounds: uint256
    rounds_done: uint256
    budget_wei: uint256
    spent_wei: uint256
    payee: address
    state: uint256

struct CrossLease:
    proposer: address
    record_hash: bytes32
    deadline: uint256
    regions: DynArray[uint256, MAX_REGIONS]
    votes: uint256   # bitmask over the index in `regions`
    state: uint256


event RegionRegistered:
    region: indexed(uint256)
    shard_chain_id: uint256
    market: address
    members: DynArray[address, MAX_COMMITTEE]
    threshold: uint256
    mechanism_id: uint256
    config_nonce: uint256

event CheckpointPosted:
    region: indexed(uint256)
    index: uint256
    block_number: uint256
    block_hash: bytes32
    lease_root: bytes32

event JobPosted:
    job_id: indexed(uint256)
    coordinator: indexed(address)
    spec_hash: bytes32
    rounds: uint256
    budget_wei: uint256
    payee: address

event RoundConfirmed:
    job_id: indexed(uint256)
    round: uint256
    update_hash: bytes32
    metrics_hash: bytes32
    spent_wei: uint256

event JobClosed:
    job_id: indexed(uint256)
    refund_wei: uint256

event CrossPrepared:
    xlease_id: indexed(bytes32)
    proposer: address
    record_hash: bytes32
    deadline: uint256
    regions: DynArray[uint256, MAX_REGIONS]
    parts: DynArray[bytes32, MAX_REGIONS]

event CrossVoted:
    xlease_id: indexed(bytes32)
    region: uint256
    commit: bool

event CrossCommitted:
    xlease_id: indexed(bytes32)

event CrossAborted:
    xlease_id: indexed(bytes32)
    reason: String[64]


root_committee: public(DynArray[address, MAX_COMMITTEE])
is_root_member: public(HashMap[address, bool])
root_threshold: public(uint256)
config_nonce: public(uint256)
domain_separator: public(bytes32)

regions: public(HashMap[uint256, Region])
region_ids: public(DynArray[uint256, MAX_REGIONS])
region_member: public(HashMap[uint256, HashMap[address, bool]])
region_members: HashMap[uint256, DynArray[address, MAX_COMMITTEE]]

checkpoint_count: public(HashMap[uint256, uint256])
checkpoints: public(HashMap[uint256, HashMap[uint256, Checkpoint]])

job_count: public(uint256)
jobs: public(HashMap[uint256, Job])
total_job_escrow: public(uint256)

cross: HashMap[bytes32, CrossLease]


@deploy
def __init__(members: DynArray[address, MAX_COMMITTEE], threshold: uint256):
    assert threshold > 0 and threshold <= len(members), "threshold must be 1..committee size"
    for member: address in members:
        assert not self.is_root_member[member], "duplicate committee member"
        self.is_root_member[member] = True
    self.root_committee = members
    self.root_threshold = threshold
    self.domain_separator = keccak256(abi_encode(
        DOMAIN_TYPEHASH, keccak256("specledger RootLedger"), keccak256("1"), chain.id, self,
    ))


@internal
@view
def _typed(struct_hash: bytes32) -> bytes32:
    return keccak256(concat(b"\x19\x01", self.domain_separator, struct_hash))


@internal
@view
def _recover(digest: bytes32, sig: Sig) -> address:
    assert convert(sig.s, uint256) <= HALF_N, "malleable signature"
    signer: address = ecrecover(digest, sig.v, sig.r, sig.s)
    assert signer != empty(address), "invalid signature"
    return signer


@internal
@view
def _root_quorum(digest: bytes32, sigs: DynArray[Sig, MAX_COMMITTEE]):
    assert len(sigs) >= self.root_threshold, "fewer than threshold root signatures"
    previous: uint256 = 0
    for sig: Sig in sigs:
        signer: address = self._recover(digest, sig)
        assert self.is_root_member[signer], "signer is not in the root committee"
        assert convert(signer, uint256) > previous, "committee signers not strictly increasing"
        previous = convert(signer, uint256)


@internal
@view
def _region_quorum(region: uint256, digest: bytes32, sigs: DynArray[Sig, MAX_COMMITTEE]):
    assert self.regions[region].registered, "unknown region"
    assert len(sigs) >= self.regions[region].threshold, "fewer than threshold region signatures"
    previous: uint256 = 0
    for sig: Sig in sigs:
        signer: address = self._recover(digest, sig)
        assert self.region_member[region][signer], "signer is not in the region committee"
        assert convert(signer, uint256) > previous, "committee signers not strictly increasing"
        previous = convert(signer, uint256)


# -- region registry ---------------------------------------------------------------------
@external
@view
def region_digest(region: uint256, shard_chain_id: uint256, market: address,
                  members: DynArray[address, MAX_COMMITTEE], threshold: uint256,
                  mechanism_id: uint256) -> bytes32:
    return self._typed(keccak256(abi_encode(
        REGION_TYPEHASH, region, shard_chain_id, market, keccak256(abi_encode(members)),
        threshold, mechanism_id, self.config_nonce)))


@external
def register_region(region: uint256, shard_chain_id: uint256, market: address,
                    members: DynArray[address, MAX_COMMITTEE], threshold: uint256,
                    mechanism_id: uint256, sigs: DynArray[Sig, MAX_COMMITTEE]):
    """Add a region or change one (committee, market, mechanism); root quorum needed."""
    self._root_quorum(self._typed(keccak256(abi_encode(
        REGION_TYPEHASH, region, shard_chain_id, market, keccak256(abi_encode(members)),
        threshold, mechanism_id, self.config_nonce))), sigs)
    assert threshold > 0 and threshold <= len(members), "threshold must be 1..committee size"
    if not self.regions[region].registered:
        assert len(self.region_ids) < MAX_REGIONS, "too many regions"
        self.region_ids.append(region)
    for old: address in self.region_members[region]:
        self.region_member[region][old] = False
    for member: address in members:
        assert not self.region_member[region][member], "duplicate committee member"
        self.region_member[region][member] = True
    self.region_members[region] = members
    self.regions[region] = Region(shard_chain_id=shard_chain_id, market=market,
                                  threshold=threshold, mechanism_id=mechanism_id,
                                  registered=True)
    self.config_nonce += 1
    log RegionRegistered(region=region, shard_chain_id=shard_chain_id, market=market,
                         members=members, threshold=threshold, mechanism_id=mechanism_id,
                         config_nonce=self.config_nonce)


@external
@view
def region_committee(region: uint256) -> DynArray[address, MAX_COMMITTEE]:
    return self.region_members[region]


# -- checkpoints -------------------------------------------------------------------------
@external
@view
def checkpoint_digest(region: uint256, block_number: uint256, block_hash: bytes32,
                      lease_root: bytes32) -> bytes32:
    return self._typed(keccak256(abi_encode(
        CHECKPOINT_TYPEHASH, region, block_number, block_hash, lease_root)))


@external
def post_checkpoint(region: uint256, block_number: uint256, block_hash: bytes32,
                    lease_root: bytes32, sigs: DynArray[Sig, MAX_COMMITTEE]):
    self._region_quorum(region, self._typed(keccak256(abi_encode(
        CHECKPOINT_TYPEHASH, region, block_number, block_hash, lease_root))), sigs)
    count: uint256 = self.checkpoint_count[region]
    if count > 0:
        assert block_number > self.checkpoints[region][count - 1].block_number, "checkpoint block not after the last one"
    self.checkpoints[region][count] = Checkpoint(block_number=block_number, block_hash=block_hash,
                                                 lease_root=lease_root, posted_at=block.timestamp)
    self.checkpoint_count[region] = count + 1
    log CheckpointPosted(region=region, index=count, block_number=block_number,
                         block_hash=block_hash, lease_root=lease_root)


@internal
@pure
def _leaf(lease_id: bytes32, lease_word: uint256) -> bytes32:
    return keccak256(concat(b"\x00", lease_id, convert(lease_word, bytes32)))


@external
@view
def verify_lease(region: uint256, index: uint256, lease_id: bytes32, lease_word: uint256,
                 proof: DynArray[bytes32, MAX_PROOF]) -> bool:
    """True when (lease_id, lease_word) is a leaf of checkpoint `index` of `region`."""
    assert index < self.checkpoint_count[region], "no such checkpoint"
    node: bytes32 = self._leaf(lease_id, lease_word)
    for sibling: bytes32 in proof:
        if convert(node, uint256) < convert(sibling, uint256):
            node = keccak256(concat(b"\x01", node, sibling))
        else:
            node = keccak256(concat(b"\x01", sibling, node))
    return node == self.checkpoints[region][index].lease_root


# -- training jobs ---------------------------------------------------------------------
@external
@payable
def post_job(spec_hash: bytes32, rounds: uint256, payee: address) -> uint256:
    """Escrow a job's budget; `payee` receives what confirmed rounds spend."""
    assert rounds > 0, "a job needs at least one round"
    assert msg.value > 0, "a job needs a budget"
    assert payee != empty(address), "payee must be set"
    job_id: uint256 = self.job_count + 1
    self.job_count = job_id
    self.jobs[job_id] = Job(coordinator=msg.sender, spec_hash=spec_hash, rounds=rounds,
                            rounds_done=0, budget_wei=msg.value, spent_wei=0, payee=payee,
                            state=JOB_OPEN)
    self.total_job_escrow += msg.value
    log JobPosted(job_id=job_id, coordinator=msg.sender, spec_hash=spec_hash, rounds=rounds,
                  budget_wei=msg.value, payee=payee)
    return job_id


@external
@nonreentrant
def confirm_round(job_id: uint256, round: uint256, update_hash: bytes32,
                  metrics_hash: bytes32, spent_wei: uint256):
    job: Job = self.jobs[job_id]
    assert job.state == JOB_OPEN, "job is not open"
    assert msg.sender == job.coordinator, "only the job's coordinator confirms rounds"
    assert round == job.rounds_done, "rounds must be confirmed in order"
    assert round < job.rounds, "job has no more rounds"
    assert job.spent_wei + spent_wei <= job.budget_wei, "round spends beyond the budget"
    self.jobs[job_id].rounds_done = round + 1
    self.jobs[job_id].spent_wei = job.spent_wei + spent_wei
    self.total_job_escrow -= spent_wei
    log RoundConfirmed(job_id=job_id, round=round, update_hash=update_hash,
                       metrics_hash=metrics_hash, spent_wei=spent_wei)
    if spent_wei > 0:
        raw_call(job.payee, b"", value=spent_wei)


@external
@nonreentrant
def close_job(job_id: uint256):
    job: Job = self.jobs[job_id]
    assert job.state == JOB_OPEN, "job is not open"
    assert msg.sender == job.coordinator, "only the job's coordinator closes it"
    refund: uint256 = job.budget_wei - job.spent_wei
    self.jobs[job_id].state = JOB_CLOSED
    self.total_job_escrow -= refund
    log JobClosed(job_id=job_id, refund_wei=refund)
    if refund > 0:
        raw_call(job.coordinator, b"", value=refund)


# -- leases spanning regions (two-phase commit) ------------------------------------------
@external
def prepare_cross(xlease_id: bytes32, regions: DynArray[uint256, MAX_REGIONS],
                  parts: DynArray[bytes32, MAX_REGIONS], deadline: uint256):
    """`parts[i]` is the EIP-712 digest of the buyer's bid in `regions[i]`; the lease's
    record hash is keccak256 of the parts in order, so an auditor can find each part."""
    assert self.cross[xlease_id].state == X_NONE, "cross-region lease already exists"
    assert len(regions) >= 2, "a cross-region lease spans at least two regions"
    assert len(parts) == len(regions), "one part per region"
    record_hash: bytes32 = empty(bytes32)
    for part: bytes32 in parts:
        record_hash = keccak256(concat(record_hash, part))
    assert deadline > block.timestamp, "deadline must be in the future"
    for i: uint256 in range(MAX_REGIONS):
        if i == len(regions):
            break
        assert self.regions[regions[i]].registered, "unknown region"
        for j: uint256 in range(MAX_REGIONS):
            if j == i:
                break
            assert regions[j] != regions[i], "region listed twice"
    self.cross[xlease_id] = CrossLease(proposer=msg.sender, record_hash=record_hash,
                                       deadline=deadline, regions=regions, votes=0,
                                       state=X_PREPARED)
    log CrossPrepared(xlease_id=xlease_id, proposer=msg.sender, record_hash=record_hash,
                      deadline=deadline, regions=regions, parts=parts)


@external
@view
def vote_digest(xlease_id: bytes32, region: uint256, commit: bool) -> bytes32:
    return self._typed(keccak256(abi_encode(VOTE_TYPEHASH, xlease_id, region, commit)))


@external
def vote_cross(xlease_id: bytes32, region: uint256, commit: bool,
               sigs: DynArray[Sig, MAX_COMMITTEE]):
    """A region's committee says whether it reserved its part (commit) or cannot (abort)."""
    x: CrossLease = self.cross[xlease_id]
    assert x.state == X_PREPARED, "cross-region lease is not prepared"
    assert block.timestamp < x.deadline, "deadline passed"
    self._region_quorum(region, self._typed(keccak256(abi_encode(
        VOTE_TYPEHASH, xlease_id, region, commit))), sigs)
    position: uint256 = MAX_REGIONS
    for i: uint256 in range(MAX_REGIONS):
        if i == len(x.regions):
            break
        if x.regions[i] == region:
            position = i
    assert position < MAX_REGIONS, "region is not part of this lease"
    assert x.votes & (1 << position) == 0, "region already voted"
    log CrossVoted(xlease_id=xlease_id, region=region, commit=commit)
    if not commit:
        self.cross[xlease_id].state = X_ABORTED
        log CrossAborted(xlease_id=xlease_id, reason="a region refused")
        return
    votes: uint256 = x.votes | (1 << position)
    self.cross[xlease_id].votes = votes
    if votes == (1 << len(x.regions)) - 1:
        self.cross[xlease_id].state = X_COMMITTED
        log CrossCommitted(xlease_id=xlease_id)


@external
def abort_cross(xlease_id: bytes32):
    """After the deadline, a lease that not every region committed is aborted."""
    assert self.cross[xlease_id].state == X_PREPARED, "cross-region lease is not prepared"
    assert block.timestamp >= self.cross[xlease_id].deadline, "deadline not reached"
    self.cross[xlease_id].state = X_ABORTED
    log CrossAborted(xlease_id=xlease_id, reason="deadline passed")


@external
@view
def cross_state(xlease_id: bytes32) -> uint256:
    return self.cross[xlease_id].state


@external
@view
def escrow_conserved() -> bool:
    return self.balance == self.total_job_escrow
