# pragma version ~=0.4.3
"""
@title RegionMarket
@notice One region shard's market for spectrum and compute leases.

    Escrow in native ether: every participant has a free balance; active leases
    hold the price locked; sellers post bonds. At every step
        self.balance == total_free + total_locked + total_bonds.

    `settle` records all the leases of one epoch in one transaction. The
    region committee signs the result (t of k signatures); every lease carries
    the buyer's EIP-712 signature over its Bid and the seller's over its Offer,
    so no escrow is debited without its owner's signature.

    Storage per lease is one word: `lease_word[lease_id]`, where
        lease_id  = keccak256(abi_encode(buyer, bid_nonce))   (so a nonce is used once)
        lease_word = (uint256(keccak256(abi_encode(LeaseRecord))) & HASH_MASK)
                     | last_seller_heartbeat << 8 | state
    (the record's hash keeps its top 184 bits; bits 8..71 hold the time of the
    seller's last heartbeat, so a heartbeat rewrites a word already written instead
    of a fresh one.) The record's fields travel in calldata and in the
    LeaseActivated event; lifecycle calls pass the record back and the contract
    checks its hash.

    Lifecycle in batches. Each party may act alone (heartbeat, complete,
    relinquish, report_default, expire: one transaction each), or sign its step
    off chain (a LeaseStep message) and hand it to the region's committee, which
    verifies the signature and sends the steps of a whole epoch under its quorum:
    with the next epoch's settlement (`settle`'s `steps`) or on their own
    (`lifecycle`). One Step holds one lease's steps of the batch: the seller's
    latest heartbeat and one action, so the record travels once. The quorum
    attests each step's party: the parties' signatures stay off chain (an
    ecrecover per step, or even their 65 bytes of calldata each, would cost a
    tenth of a lease's life). Every step keeps the rules of its one-transaction
    twin (who may take it, and when); a step whose lease is no longer active (its
    party acted alone in between) is skipped with `StepSkipped`.

    Joins in batches: `join` registers participants (each authorised by its own
    signature), deposits into their escrow and posts their bonds, paid by the
    sender; only the owner ever withdraws.

    Spectrum is a grid of `num_channels` channels (<= 256) by time slots of
    `epoch_length_s` seconds (slot = timestamp // epoch_length_s). A region-wide
    bitmap per slot makes overlapping spectrum leases impossible; a protected
    channel mask (incumbents) may never be leased.

    Lease states: 0 none, 1 active, 2 completed, 3 relinquished, 4 defaulted, 5 expired.

    An epoch of more than MAX_LEASES leases settles in parts, one transaction each,
    all or nothing: the committee signs the whole epoch once (leases_hash chains
    every lease of the epoch, in order) and every part carries that signature. The
    parts must land in order, from one sender, with no other epoch between them;
    the epoch is settled (`Settled`, epoch_state SEALED) only when the chain of
    the parts landed so far equals the signed leases_hash. Until then its leases
    take no lifecycle step. An epoch still unsealed when a later epoch starts is
    void (`EpochVoided`): its leases can only be expired, which refunds each buyer
    in full at once, and the seller is paid nothing.
"""

MAX_COMMITTEE: constant(uint256) = 32
MAX_LEASES: constant(uint256) = 128  # per settlement; the calldata copy reserves all of it (vyper#4223)
MAX_SLOTS: constant(uint256) = 64
MAX_STEPS: constant(uint256) = 128  # lifecycle steps in one transaction
MAX_JOINS: constant(uint256) = 64   # participants joined in one transaction

KIND_SPECTRUM: constant(uint256) = 0
KIND_COMPUTE: constant(uint256) = 1

ROLE_NONE: constant(uint256) = 0
ROLE_SATELLITE: constant(uint256) = 1
ROLE_TERRESTRIAL: constant(uint256) = 2
ROLE_EDGE_DEVICE: constant(uint256) = 3
ROLE_EDGE_SERVER: constant(uint256) = 4
ROLE_COORDINATOR: constant(uint256) = 5

STATE_NONE: constant(uint256) = 0
STATE_ACTIVE: constant(uint256) = 1
STATE_COMPLETED: constant(uint256) = 2
STATE_RELINQUISHED: constant(uint256) = 3
STATE_DEFAULTED: constant(uint256) = 4
STATE_EXPIRED: constant(uint256) = 5

STATE_MASK: constant(uint256) = 255
HEARTBEAT_MASK: constant(uint256) = 18446744073709551615 << 8  # bits 8..71
HASH_MASK: constant(uint256) = ~(STATE_MASK | HEARTBEAT_MASK)

STEP_NONE: constant(uint256) = 0       # the seller's heartbeat only
STEP_HEARTBEAT: constant(uint256) = 1  # (the action number a LeaseStep message names)
STEP_COMPLETE: constant(uint256) = 2
STEP_RELINQUISH: constant(uint256) = 3
STEP_DEFAULT: constant(uint256) = 4
STEP_EXPIRE: constant(uint256) = 5

EPOCH_NONE: constant(uint256) = 0
EPOCH_SETTLING: constant(uint256) = 1  # some of its parts landed
EPOCH_SEALED: constant(uint256) = 2    # every part landed: its leases are live
EPOCH_VOID: constant(uint256) = 3      # a later epoch started before it sealed
# secp256k1 n / 2: signatures with a larger s are the malleable twin of another
HALF_N: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168

DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
OFFER_TYPEHASH: constant(bytes32) = keccak256(
    "Offer(uint256 region,address seller,uint256 kind,uint256 lo,uint256 hi,uint256 start,uint256 end,uint256 reserveWei,uint256 nonce)"
)
BID_TYPEHASH: constant(bytes32) = keccak256(
    "Bid(uint256 region,address buyer,uint256 kind,uint256 lo,uint256 hi,uint256 units,uint256 start,uint256 end,uint256 maxPriceWei,uint256 nonce)"
)
SETTLEMENT_TYPEHASH: constant(bytes32) = keccak256(
    "Settlement(uint256 region,uint256 epoch,bytes32 orderbookRoot,bytes32 leasesHash,bytes32 stepsHash)"
)
LIFECYCLE_TYPEHASH: constant(bytes32) = keccak256(
    "Lifecycle(uint256 region,uint256 nonce,bytes32 stepsHash)"
)
REGISTRATION_TYPEHASH: constant(bytes32) = keccak256(
    "Registration(uint256 region,address who,uint256 role)"
)
ROTATION_TYPEHASH: constant(bytes32) = keccak256(
    "Rotation(uint256 region,bytes32 membersHash,uint256 threshold,uint256 configNonce)"
)
MECHANISM_TYPEHASH: constant(bytes32) = keccak256(
    "Mechanism(uint256 region,uint256 mechanismId,bytes32 paramsHash,uint256 configNonce)"
)


# The settlement's calldata structs hold only 32-byte words (an address as uint256, v as
# uint256): vyper then copies a LeaseIn from calldata in one CALLDATACOPY, where address
# and uint8 fields are loaded and range-checked one at a time (measured: 250 -> 30 opcodes
# a lease). The contract converts seller and buyer to address before using them, which
# range-checks them; an out-of-range v makes ecrecover fail.
struct Sig:
    v: uint256
    r: bytes32
    s: bytes32

struct Offer:
    seller: uint256      # the seller's address
    kind: uint256        # KIND_SPECTRUM or KIND_COMPUTE
    lo: uint256          # spectrum: first channel offered; compute: its class (device, server, ...)
    hi: uint256          # spectrum: end channel (exclusive); compute: capacity in units
    start: uint256       # offered window [start, end), unix seconds
    end: uint256
    reserve_wei: uint256 # minimum price per unit (channel or compute unit) for the window
    nonce: uint256

struct Bid:
    buyer: uint256       # the buyer's address
    kind: uint256
    lo: uint256          # spectrum: acceptable channels [lo, hi); compute: the class wanted
    hi: uint256
    units: uint256       # channels (contiguous) or compute units wanted
    start: uint256       # wanted window [start, end), slot-aligned
    end: uint256
    max_price_wei: uint256  # the most the buyer pays for the whole lease
    nonce: uint256       # each (buyer, nonce) settles at most once

struct LeaseIn:
    offer: Offer
    offer_sig: Sig
    bid: Bid
    bid_sig: Sig
    first: uint256       # spectrum: first assigned channel; compute: 0
    price_wei: uint256

struct LeaseRecord:
    epoch: uint256
    kind: uint256
    seller: address
    buyer: address
    nonce: uint256
    first: uint256
    units: uint256
    start: uint256
    end: uint256
    price_wei: uint256
    offer_hash: bytes32

struct Step:
    # one lease's steps in a batch: the seller's latest heartbeat, then an action
    rec: LeaseRecord
    heartbeat_at: uint256  # when the seller sent it (0: no heartbeat in this batch)
    action: uint256        # STEP_NONE, or STEP_COMPLETE .. STEP_EXPIRE
    party: uint256         # who took the action (an address; 0: the committee, for defaults and expiries)

struct Joiner:
    who: uint256         # the participant's address
    role: uint256        # its role, registered with its signature; ROLE_NONE: registered already
    deposit_wei: uint256 # into its free escrow
    bond_wei: uint256    # its bond (sellers)
    sig: Sig             # its signature over Registration(region, who, role); unused for ROLE_NONE


event Registered:
    who: indexed(address)
    role: uint256

event Deposited:
    who: indexed(address)
    amount_wei: uint256
    free_wei: uint256

event Withdrawn:
    who: indexed(address)
    amount_wei: uint256
    free_wei: uint256

event BondPosted:
    seller: indexed(address)
    amount_wei: uint256
    bond_wei: uint256

event BondExitRequested:
    seller: indexed(address)
    withdrawable_at: uint256

event BondWithdrawn:
    seller: indexed(address)
    amount_wei: uint256

event Settled:
    epoch: indexed(uint256)
    orderbook_root: bytes32
    leases_hash: bytes32
    leases: uint256
    total_price_wei: uint256
    signers: uint256

event SettlementPart:
    epoch: indexed(uint256)
    leases: uint256
    running_hash: bytes32

event EpochVoided:
    epoch: indexed(uint256)

event LeaseActivated:
    lease_id: indexed(bytes32)
    epoch: indexed(uint256)
    kind: uint256
    seller: address
    buyer: address
    nonce: uint256
    first: uint256
    units: uint256
    start: uint256
    end: uint256
    price_wei: uint256
    offer_hash: bytes32

event LeaseCompleted:
    lease_id: indexed(bytes32)
    paid_seller_wei: uint256

event LeaseRelinquished:
    lease_id: indexed(bytes32)
    refund_buyer_wei: uint256
    paid_seller_wei: uint256

event LeaseDefaulted:
    lease_id: indexed(bytes32)
    refund_buyer_wei: uint256
    slashed_bond_wei: uint256

event LeaseExpired:
    lease_id: indexed(bytes32)
    refund_buyer_wei: uint256

event Heartbeat:
    lease_id: indexed(bytes32)
    sender: indexed(address)
    at: uint256

event StepSkipped:
    lease_id: indexed(bytes32)
    action: uint256
    state: uint256

event LifecycleBatch:
    nonce: uint256
    steps_hash: bytes32
    steps: uint256
    signers: uint256

event CommitteeRotated:
    members: DynArray[address, MAX_COMMITTEE]
    threshold: uint256
    config_nonce: uint256

event MechanismChanged:
    mechanism_id: uint256
    params_hash: bytes32
    config_nonce: uint256


# -- configuration ---------------------------------------------------------------
region_id: public(uint256)
committee: public(DynArray[address, MAX_COMMITTEE])
is_member: public(HashMap[address, bool])
threshold: public(uint256)
mechanism_id: public(uint256)
mechanism_params_hash: public(bytes32)
config_nonce: public(uint256)
num_channels: public(uint256)
channel_width_hz: public(uint256)
spectrum_low_hz: public(uint256)
protected_mask: public(uint256)
epoch_length_s: public(uint256)
heartbeat_interval_s: public(uint256)
claim_window_s: public(uint256)
min_bond_wei: public(uint256)
bond_notice_s: public(uint256)
domain_separator: public(bytes32)

# -- escrow ------------------------------------------------------------------------
role: public(HashMap[address, uint256])
free: public(HashMap[address, uint256])
bond: public(HashMap[address, uint256])
bond_exit_at: public(HashMap[address, uint256])
total_free: public(uint256)
total_locked: public(uint256)
total_bonds: public(uint256)

# -- leases --------------------------------------------------------------------------
last_epoch: public(uint256)   # the last sealed epoch
epoch_state: public(HashMap[uint256, uint256])
# the epoch whose parts are landing: its first part's sender, the chain of its leases
# so far, and their count and total price (for its Settled event)
open_epoch: public(uint256)
open_sender: public(address)
open_running: public(bytes32)
open_leases: public(uint256)
open_total_wei: public(uint256)
lease_word: public(HashMap[bytes32, uint256])
lifecycle_nonce: public(uint256)  # standalone lifecycle batches sent so far
occupancy: public(HashMap[uint256, uint256])   # slot -> bitmap of leased channels
sold_units: public(HashMap[bytes32, uint256])  # compute offer hash -> units sold


@deploy
def __init__(
    region_id: uint256,
    committee: DynArray[address, MAX_COMMITTEE],
    threshold: uint256,
    mechanism_id: uint256,
    mechanism_params_hash: bytes32,
    spectrum_low_hz: uint256,
    channel_width_hz: uint256,
    num_channels: uint256,
    protected_mask: uint256,
    epoch_length_s: uint256,
    heartbeat_interval_s: uint256,
    claim_window_s: uint256,
    min_bond_wei: uint256,
):
    assert num_channels > 0 and num_channels <= 256, "num_channels must be 1..256"
    assert epoch_length_s > 0, "epoch_length_s must be positive"
    assert channel_width_hz > 0, "channel_width_hz must be positive"
    self._set_committee(committee, threshold)
    self.region_id = region_id
    self.mechanism_id = mechanism_id
    self.mechanism_params_hash = mechanism_params_hash
    self.spectrum_low_hz = spectrum_low_hz
    self.channel_width_hz = channel_width_hz
    self.num_channels = num_channels
    self.protected_mask = protected_mask
    self.epoch_length_s = epoch_length_s
    self.heartbeat_interval_s = heartbeat_interval_s
    self.claim_window_s = claim_window_s
    self.min_bond_wei = min_bond_wei
    # a bond must outlive the longest lease it backs, plus the claim window
    self.bond_notice_s = MAX_SLOTS * epoch_length_s + claim_window_s
    self.domain_separator = keccak256(abi_encode(
        DOMAIN_TYPEHASH, keccak256("specledger RegionMarket"), keccak256("1"),
        chain.id, self,
    ))


# -- signatures ----------------------------------------------------------------------
@internal
@view
def _recover(digest: bytes32, sig: Sig) -> address:
    assert convert(sig.s, uint256) <= HALF_N, "malleable signature"
    signer: address = ecrecover(digest, sig.v, sig.r, sig.s)
    assert signer != empty(address), "invalid signature"
    return signer


@internal
@view
def _typed(struct_hash: bytes32) -> bytes32:
    return keccak256(concat(b"\x19\x01", self.domain_separator, struct_hash))


@internal
@view
def _check_quorum(digest: bytes32, sigs: DynArray[Sig, MAX_COMMITTEE]) -> uint256:
    # signers must be distinct members in strictly increasing address order,
    # which rules out counting one member's signature twice
    assert len(sigs) >= self.threshold, "fewer than threshold committee signatures"
    previous: uint256 = 0
    for sig: Sig in sigs:
        signer: address = self._recover(digest, sig)
        assert self.is_member[signer], "signer is not in the committee"
        assert convert(signer, uint256) > previous, "committee signers not strictly increasing"
        previous = convert(signer, uint256)
    return len(sigs)


@internal
def _set_committee(members: DynArray[address, MAX_COMMITTEE], threshold: uint256):
    assert threshold > 0 and threshold <= len(members), "threshold must be 1..committee size"
    for old: address in self.committee:
        self.is_member[old] = False
    for member: address in members:
        assert member != empty(address), "empty committee member"
        assert not self.is_member[member], "duplicate committee member"
        self.is_member[member] = True
    self.committee = members
    self.threshold = threshold


@external
@view
def offer_digest(offer: Offer) -> bytes32:
    """The EIP-712 digest a seller signs for an offer in this region."""
    return self._typed(self._offer_hash(offer))


@external
@view
def bid_digest(bid: Bid) -> bytes32:
    """The EIP-712 digest a buyer signs for a bid in this region."""
    return self._typed(self._bid_hash(bid))


@internal
@view
def _offer_hash(o: Offer) -> bytes32:
    # an all-word struct abi-encodes as its fields in order: hashStruct's layout
    return keccak256(abi_encode(OFFER_TYPEHASH, self.region_id, o))


@internal
@view
def _bid_hash(b: Bid) -> bytes32:
    return keccak256(abi_encode(BID_TYPEHASH, self.region_id, b))


@external
@view
def settlement_digest(epoch: uint256, orderbook_root: bytes32, leases_hash: bytes32,
                      steps_hash: bytes32) -> bytes32:
    """The EIP-712 digest each committee member signs for an epoch's settlement."""
    return self._typed(keccak256(abi_encode(
        SETTLEMENT_TYPEHASH, self.region_id, epoch, orderbook_root, leases_hash, steps_hash)))


@external
@view
def lifecycle_digest(nonce: uint256, steps_hash: bytes32) -> bytes32:
    """The EIP-712 digest each committee member signs for a standalone lifecycle batch."""
    return self._typed(keccak256(abi_encode(LIFECYCLE_TYPEHASH, self.region_id, nonce, steps_hash)))


@external
@view
def registration_digest(who: address, role: uint256) -> bytes32:
    """The EIP-712 digest a participant signs to be registered by `join`."""
    return self._typed(keccak256(abi_encode(REGISTRATION_TYPEHASH, self.region_id, who, role)))


@external
@view
def rotation_digest(members: DynArray[address, MAX_COMMITTEE], threshold: uint256) -> bytes32:
    return self._typed(keccak256(abi_encode(
        ROTATION_TYPEHASH, self.region_id, keccak256(abi_encode(members)), threshold,
        self.config_nonce)))


@external
@view
def mechanism_digest(mechanism_id: uint256, params_hash: bytes32) -> bytes32:
    return self._typed(keccak256(abi_encode(
        MECHANISM_TYPEHASH, self.region_id, mechanism_id, params_hash, self.config_nonce)))


# -- configuration changes (committee quorum) ------------------------------------------
@external
def rotate_committee(members: DynArray[address, MAX_COMMITTEE], threshold: uint256,
                     sigs: DynArray[Sig, MAX_COMMITTEE]):
    digest: bytes32 = self._typed(keccak256(abi_encode(
        ROTATION_TYPEHASH, self.region_id, keccak256(abi_encode(members)), threshold,
        self.config_nonce)))
    self._check_quorum(digest, sigs)
    self._set_committee(members, threshold)
    self.config_nonce += 1
    log CommitteeRotated(members=members, threshold=threshold, config_nonce=self.config_nonce)


@external
def set_mechanism(mechanism_id: uint256, params_hash: bytes32, sigs: DynArray[Sig, MAX_COMMITTEE]):
    digest: bytes32 = self._typed(keccak256(abi_encode(
        MECHANISM_TYPEHASH, self.region_id, mechanism_id, params_hash, self.config_nonce)))
    self._check_quorum(digest, sigs)
    self.mechanism_id = mechanism_id
    self.mechanism_params_hash = params_hash
    self.config_nonce += 1
    log MechanismChanged(mechanism_id=mechanism_id, params_hash=params_hash,
                         config_nonce=self.config_nonce)


# -- participants and escrow -----------------------------------------------------------
@internal
def _register(who: address, role: uint256):
    assert role >= ROLE_SATELLITE and role <= ROLE_COORDINATOR, "unknown role"
    assert self.role[who] == ROLE_NONE, "already registered"
    self.role[who] = role
    log Registered(who=who, role=role)


@internal
def _deposit(who: address, amount: uint256):
    assert self.role[who] != ROLE_NONE, "register before depositing"
    assert amount > 0, "deposit must be positive"
    free: uint256 = self.free[who] + amount
    self.free[who] = free
    self.total_free += amount
    log Deposited(who=who, amount_wei=amount, free_wei=free)


@internal
def _post_bond(who: address, amount: uint256):
    r: uint256 = self.role[who]
    assert r == ROLE_SATELLITE or r == ROLE_TERRESTRIAL or r == ROLE_EDGE_DEVICE or r == ROLE_EDGE_SERVER, "only sellers post bonds"
    assert amount > 0, "bond must be positive"
    assert self.bond_exit_at[who] == 0, "bond exit pending"
    bond: uint256 = self.bond[who] + amount
    self.bond[who] = bond
    self.total_bonds += amount
    log BondPosted(seller=who, amount_wei=amount, bond_wei=bond)


@external
def register(role: uint256):
    self._register(msg.sender, role)


@external
@payable
def deposit():
    self._deposit(msg.sender, msg.value)


@external
@payable
def join(joiners: DynArray[Joiner, MAX_JOINS]):
    """Register, fund and bond many participants at once; the sender pays every deposit
    and bond (msg.value is their sum). Each registration carries the participant's
    own signature; money only ever goes into escrow, and out only by its owner."""
    paid: uint256 = 0
    for i: uint256 in range(len(joiners), bound=MAX_JOINS):
        j: Joiner = joiners[i]
        who: address = convert(j.who, address)
        if j.role != ROLE_NONE:
            digest: bytes32 = self._typed(keccak256(abi_encode(
                REGISTRATION_TYPEHASH, self.region_id, who, j.role)))
            assert self._recover(digest, j.sig) == who, "registration not signed by its participant"
            self._register(who, j.role)
        if j.deposit_wei > 0:
            self._deposit(who, j.deposit_wei)
        if j.bond_wei > 0:
            self._post_bond(who, j.bond_wei)
        paid += j.deposit_wei + j.bond_wei
    assert paid == msg.value, "value sent is not the sum of the deposits and bonds"


@external
@nonreentrant
def withdraw(amount_wei: uint256):
    assert amount_wei > 0, "withdrawal must be positive"
    assert self.free[msg.sender] >= amount_wei, "withdrawal exceeds free balance"
    # effects before the transfer; the lock stops re-entry through any entry point
    self.free[msg.sender] -= amount_wei
    self.total_free -= amount_wei
    log Withdrawn(who=msg.sender, amount_wei=amount_wei, free_wei=self.free[msg.sender])
    raw_call(msg.sender, b"", value=amount_wei)


@external
@payable
def post_bond():
    self._post_bond(msg.sender, msg.value)


@external
def request_bond_exit():
    assert self.bond[msg.sender] > 0, "no bond"
    assert self.bond_exit_at[msg.sender] == 0, "bond exit pending"
    at: uint256 = block.timestamp + self.bond_notice_s
    self.bond_exit_at[msg.sender] = at
    log BondExitRequested(seller=msg.sender, withdrawable_at=at)


@external
@nonreentrant
def withdraw_bond():
    at: uint256 = self.bond_exit_at[msg.sender]
    assert at != 0, "request_bond_exit first"
    assert block.timestamp >= at, "bond notice period not over"
    amount: uint256 = self.bond[msg.sender]
    self.bond[msg.sender] = 0
    self.bond_exit_at[msg.sender] = 0
    self.total_bonds -= amount
    log BondWithdrawn(seller=msg.sender, amount_wei=amount)
    if amount > 0:
        raw_call(msg.sender, b"", value=amount)


# -- settlement -------------------------------------------------------------------------
@internal
def _activate(epoch: uint256, lease: LeaseIn, verified: bytes32) -> (bytes32, bytes32):
    o: Offer = lease.offer
    b: Bid = lease.bid
    seller: address = convert(o.seller, address)  # reverts unless it is an address
    buyer: address = convert(b.buyer, address)
    assert o.kind == b.kind, "offer and bid are for different resources"
    assert b.units > 0, "bid for zero units"
    assert b.start < b.end, "empty lease window"
    assert b.end > block.timestamp, "lease window already over"
    assert o.start <= b.start and b.end <= o.end, "lease window outside the offer"
    assert lease.price_wei <= b.max_price_wei, "price above the bid's maximum"
    assert lease.price_wei >= o.reserve_wei * b.units, "price below the offer's reserve"

    offer_hash: bytes32 = self._offer_hash(o)
    # leases of one offer sit together: the seller's signature and bond are checked once
    # for each distinct (offer, signature), so every lease still carries a valid signature
    signed: bytes32 = keccak256(abi_encode(offer_hash, lease.offer_sig))
    if signed != verified:
        assert self._recover(self._typed(offer_hash), lease.offer_sig) == seller, "offer not signed by its seller"
        assert self.bond[seller] >= self.min_bond_wei, "seller bond below minimum"
        assert self.bond_exit_at[seller] == 0, "seller is leaving (bond exit pending)"
    assert self._recover(self._typed(self._bid_hash(b)), lease.bid_sig) == buyer, "bid not signed by its buyer"

    lease_id: bytes32 = keccak256(abi_encode(buyer, b.nonce))
    assert self.lease_word[lease_id] == 0, "bid nonce already used"

    if o.kind == KIND_SPECTRUM:
        assert lease.first >= o.lo and lease.first + b.units <= o.hi, "channels outside the offer"
        assert lease.first >= b.lo and lease.first + b.units <= b.hi, "channels outside the bid"
        assert lease.first + b.units <= self.num_channels, "channels outside the region"
        mask: uint256 = max_value(uint256)
        if b.units < 256:
            mask = (1 << b.units) - 1
        mask = mask << lease.first
        assert mask & self.protected_mask == 0, "lease touches a protected band"
        slot_len: uint256 = self.epoch_length_s
        assert b.start % slot_len == 0 and b.end % slot_len == 0, "window not slot-aligned"
        first_slot: uint256 = b.start // slot_len
        slots: uint256 = b.end // slot_len - first_slot
        assert slots <= MAX_SLOTS, "lease longer than MAX_SLOTS"
        for i: uint256 in range(MAX_SLOTS):
            if i == slots:
                break
            used: uint256 = self.occupancy[first_slot + i]
            assert used & mask == 0, "spectrum lease overlaps another"
            self.occupancy[first_slot + i] = used | mask
    else:
        assert o.kind == KIND_COMPUTE, "unknown resource kind"
        assert lease.first == 0, "compute leases have no channel"
        assert b.lo == o.lo, "compute class differs"
        sold: uint256 = self.sold_units[offer_hash] + b.units
        assert sold <= o.hi, "compute offer sold beyond capacity"
        self.sold_units[offer_hash] = sold

    assert self.free[buyer] >= lease.price_wei, "buyer's free balance below price"
    self.free[buyer] -= lease.price_wei

    record: bytes32 = keccak256(abi_encode(LeaseRecord(
        epoch=epoch, kind=o.kind, seller=seller, buyer=buyer, nonce=b.nonce,
        first=lease.first, units=b.units, start=b.start, end=b.end,
        price_wei=lease.price_wei, offer_hash=offer_hash)))
    self.lease_word[lease_id] = (convert(record, uint256) & HASH_MASK) | STATE_ACTIVE
    log LeaseActivated(lease_id=lease_id, epoch=epoch, kind=o.kind, seller=seller,
                       buyer=buyer, nonce=b.nonce, first=lease.first, units=b.units,
                       start=b.start, end=b.end, price_wei=lease.price_wei,
                       offer_hash=offer_hash)
    return record, signed


@external
def settle(epoch: uint256, orderbook_root: bytes32, leases_hash: bytes32, steps_hash: bytes32,
           leases: DynArray[LeaseIn, MAX_LEASES], steps: DynArray[Step, MAX_STEPS],
           sigs: DynArray[Sig, MAX_COMMITTEE]):
    """Record leases of `epoch`: all of them, or the next part of them, and (with the
    first part) the lifecycle steps of earlier epochs' leases. leases_hash chains the
    record hashes of every lease of the epoch: h_0 = 0,
    h_i = keccak256(h_{i-1} ++ record_i); steps_hash chains the steps the same way
    (keccak256 of each abi-encoded Step). The committee signs both, and each part
    carries the signatures. The epoch seals when the parts' chain reaches h_n."""
    running: bytes32 = empty(bytes32)
    count: uint256 = 0
    total: uint256 = 0
    first_part: bool = self.epoch_state[epoch] != EPOCH_SETTLING
    if not first_part:
        assert epoch == self.open_epoch and msg.sender == self.open_sender, "not this epoch's sender"
        assert len(steps) == 0, "lifecycle steps ride on an epoch's first part only"
        running = self.open_running
        count = self.open_leases
        total = self.open_total_wei
    else:
        assert epoch > self.last_epoch and epoch > self.open_epoch, "epoch not after the last settled one"
        previous: uint256 = self.open_epoch
        if self.epoch_state[previous] == EPOCH_SETTLING:
            self.epoch_state[previous] = EPOCH_VOID
            log EpochVoided(epoch=previous)
    digest: bytes32 = self._typed(keccak256(abi_encode(
        SETTLEMENT_TYPEHASH, self.region_id, epoch, orderbook_root, leases_hash, steps_hash)))
    signers: uint256 = self._check_quorum(digest, sigs)
    if first_part:
        steps_running: bytes32 = empty(bytes32)
        for i: uint256 in range(len(steps), bound=MAX_STEPS):
            steps_running = keccak256(abi_encode(steps_running, keccak256(abi_encode(steps[i]))))
            self._step(steps[i])
        assert steps_running == steps_hash, "steps do not match the signed steps_hash"
    part_total: uint256 = 0
    # index the calldata array: `for lease in leases` would copy all MAX_LEASES slots to memory
    verified: bytes32 = empty(bytes32)
    for i: uint256 in range(len(leases), bound=MAX_LEASES):
        record: bytes32 = empty(bytes32)
        record, verified = self._activate(epoch, leases[i], verified)
        running = keccak256(abi_encode(running, record))  # = concat: two words
        part_total += leases[i].price_wei
    self.total_free -= part_total
    self.total_locked += part_total
    count += len(leases)
    total += part_total
    if running == leases_hash:
        self.epoch_state[epoch] = EPOCH_SEALED
        self.last_epoch = epoch
        log Settled(epoch=epoch, orderbook_root=orderbook_root, leases_hash=leases_hash,
                    leases=count, total_price_wei=total, signers=signers)
    else:
        self.epoch_state[epoch] = EPOCH_SETTLING
        self.open_epoch = epoch
        self.open_sender = msg.sender
        self.open_running = running
        self.open_leases = count
        self.open_total_wei = total
        log SettlementPart(epoch=epoch, leases=len(leases), running_hash=running)


# -- lease lifecycle -------------------------------------------------------------------
@internal
@view
def _recorded(rec: LeaseRecord) -> bytes32:
    lease_id: bytes32 = keccak256(abi_encode(rec.buyer, rec.nonce))
    word: uint256 = self.lease_word[lease_id]
    assert word != 0, "no such lease"
    assert word & HASH_MASK == convert(keccak256(abi_encode(rec)), uint256) & HASH_MASK, "lease record does not match"
    assert word & STATE_MASK == STATE_ACTIVE, "lease is not active"
    return lease_id


@internal
@view
def _active(rec: LeaseRecord) -> bytes32:
    lease_id: bytes32 = self._recorded(rec)
    assert self.epoch_state[rec.epoch] == EPOCH_SEALED, "lease's epoch is not sealed"
    return lease_id


@internal
def _set_state(lease_id: bytes32, state: uint256):
    self.lease_word[lease_id] = (self.lease_word[lease_id] & ~STATE_MASK) | state


@external
@view
def lease_state(lease_id: bytes32) -> uint256:
    return self.lease_word[lease_id] & STATE_MASK


@external
@view
def last_heartbeat(lease_id: bytes32) -> uint256:
    """When the lease's seller last sent a heartbeat (0: never)."""
    return (self.lease_word[lease_id] & HEARTBEAT_MASK) >> 8


@internal
def _heartbeat(rec: LeaseRecord, party: address, at: uint256):
    lease_id: bytes32 = self._active(rec)
    assert party == rec.seller or party == rec.buyer, "only the lease's parties send heartbeats"
    assert at <= block.timestamp, "heartbeat from the future"
    if party == rec.seller:
        word: uint256 = self.lease_word[lease_id]
        if at > (word & HEARTBEAT_MASK) >> 8:
            self.lease_word[lease_id] = (word & ~HEARTBEAT_MASK) | (at << 8)
    log Heartbeat(lease_id=lease_id, sender=party, at=at)


@internal
def _complete(rec: LeaseRecord, party: address):
    lease_id: bytes32 = self._active(rec)
    if party != rec.buyer:
        assert party == rec.seller, "only the lease's parties complete it"
        assert block.timestamp >= rec.end, "lease has not ended"
        assert block.timestamp < rec.end + self.claim_window_s, "claim window over: expire it"
    self._set_state(lease_id, STATE_COMPLETED)
    self.total_locked -= rec.price_wei
    self.free[rec.seller] += rec.price_wei
    self.total_free += rec.price_wei
    log LeaseCompleted(lease_id=lease_id, paid_seller_wei=rec.price_wei)


@internal
def _relinquish(rec: LeaseRecord, party: address):
    lease_id: bytes32 = self._active(rec)
    assert party == rec.buyer, "only the buyer relinquishes"
    assert block.timestamp < rec.end, "lease has ended: complete it"
    used: uint256 = 0
    if block.timestamp > rec.start:
        used = rec.price_wei * (block.timestamp - rec.start) // (rec.end - rec.start)
    refund: uint256 = rec.price_wei - used
    self._set_state(lease_id, STATE_RELINQUISHED)
    self.total_locked -= rec.price_wei
    self.free[rec.buyer] += refund
    self.free[rec.seller] += used
    self.total_free += rec.price_wei
    log LeaseRelinquished(lease_id=lease_id, refund_buyer_wei=refund, paid_seller_wei=used)


@internal
def _report_default(rec: LeaseRecord, attested: bool, party: address):
    lease_id: bytes32 = self._active(rec)
    assert attested or party == rec.buyer or self.is_member[party], "only the buyer or the committee reports defaults"
    last: uint256 = max((self.lease_word[lease_id] & HEARTBEAT_MASK) >> 8, rec.start)
    assert block.timestamp > last + self.heartbeat_interval_s, "seller's heartbeat is not overdue"
    assert block.timestamp < rec.end + self.claim_window_s, "claim window over: expire it"
    slashed: uint256 = min(self.bond[rec.seller], rec.price_wei)
    self._set_state(lease_id, STATE_DEFAULTED)
    self.bond[rec.seller] -= slashed
    self.total_bonds -= slashed
    self.total_locked -= rec.price_wei
    self.free[rec.buyer] += rec.price_wei + slashed
    self.total_free += rec.price_wei + slashed
    log LeaseDefaulted(lease_id=lease_id, refund_buyer_wei=rec.price_wei, slashed_bond_wei=slashed)


@internal
def _expire(rec: LeaseRecord):
    lease_id: bytes32 = self._recorded(rec)
    if self.epoch_state[rec.epoch] != EPOCH_VOID:
        assert self.epoch_state[rec.epoch] == EPOCH_SEALED, "lease's epoch is not sealed"
        assert block.timestamp >= rec.end + self.claim_window_s, "claim window still open"
    self._set_state(lease_id, STATE_EXPIRED)
    self.total_locked -= rec.price_wei
    self.free[rec.buyer] += rec.price_wei
    self.total_free += rec.price_wei
    log LeaseExpired(lease_id=lease_id, refund_buyer_wei=rec.price_wei)


@internal
def _step(step: Step):
    """Apply one attested step. A lease no longer active (its party acted alone since
    the committee attested) is skipped, not reverted: the rest of the batch stands."""
    lease_id: bytes32 = keccak256(abi_encode(step.rec.buyer, step.rec.nonce))
    state: uint256 = self.lease_word[lease_id] & STATE_MASK
    if state != STATE_ACTIVE and state != STATE_NONE:
        log StepSkipped(lease_id=lease_id, action=step.action, state=state)
        return
    if step.heartbeat_at != 0:
        self._heartbeat(step.rec, step.rec.seller, step.heartbeat_at)
    party: address = convert(step.party, address)
    if step.action == STEP_COMPLETE:
        self._complete(step.rec, party)
    elif step.action == STEP_RELINQUISH:
        self._relinquish(step.rec, party)
    elif step.action == STEP_DEFAULT:
        self._report_default(step.rec, True, party)
    elif step.action == STEP_EXPIRE:
        self._expire(step.rec)
    else:
        assert step.action == STEP_NONE and step.heartbeat_at != 0, "unknown lifecycle step"


@external
def lifecycle(steps_hash: bytes32, steps: DynArray[Step, MAX_STEPS], sigs: DynArray[Sig, MAX_COMMITTEE]):
    """Lifecycle steps the committee attests, in one transaction (when no settlement
    carries them). `lifecycle_nonce` orders the batches and stops a replay. steps_hash
    chains the steps: s_0 = 0, s_i = keccak256(s_{i-1} ++ keccak256(abi_encode(step_i)))."""
    nonce: uint256 = self.lifecycle_nonce
    digest: bytes32 = self._typed(keccak256(abi_encode(
        LIFECYCLE_TYPEHASH, self.region_id, nonce, steps_hash)))
    signers: uint256 = self._check_quorum(digest, sigs)
    running: bytes32 = empty(bytes32)
    # index the calldata array (a copy of all MAX_STEPS slots to memory costs ~200k gas)
    for i: uint256 in range(len(steps), bound=MAX_STEPS):
        running = keccak256(abi_encode(running, keccak256(abi_encode(steps[i]))))
        self._step(steps[i])
    assert running == steps_hash, "steps do not match the signed steps_hash"
    self.lifecycle_nonce = nonce + 1
    log LifecycleBatch(nonce=nonce, steps_hash=steps_hash, steps=len(steps), signers=signers)


@external
def heartbeat(rec: LeaseRecord):
    self._heartbeat(rec, msg.sender, block.timestamp)


@external
def complete(rec: LeaseRecord):
    """Pay the seller: by the buyer at any time (the round is confirmed), or by
    either party once the lease has ended and within the claim window."""
    self._complete(rec, msg.sender)


@external
def relinquish(rec: LeaseRecord):
    """The buyer ends the lease early; the unused share of the time is refunded."""
    self._relinquish(rec, msg.sender)


@external
def report_default(rec: LeaseRecord):
    """The seller missed its heartbeat deadline: refund the buyer, slash the bond."""
    self._report_default(rec, False, msg.sender)


@external
def expire(rec: LeaseRecord):
    """Nobody claimed the lease within the claim window after its end, or its epoch
    is void: the locked price goes back to the buyer (a seller is paid only when it
    claims)."""
    self._expire(rec)


@external
@view
def escrow_conserved() -> bool:
    return self.balance == self.total_free + self.total_locked + self.total_bonds
