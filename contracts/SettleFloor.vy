# pragma version ~=0.4.3
"""
@title SettleFloor
@notice A benchmark contract, like Probe: no business logic. `settle` does only what
        recording any signed lease needs, per lease: one ecrecover of the buyer's
        signature, a fresh storage word that marks (buyer, nonce) used, an escrow
        debit, and one event. `specledger bench ledger` settles 100 such leases per
        transaction to measure how fast a chain can record leases at all
        (`floor_leases_per_s`), beside what RegionMarket's settlement reaches.
"""

MAX_ITEMS: constant(uint256) = 128

struct Item:
    digest: bytes32      # what the buyer signed
    v: uint256
    r: bytes32
    s: bytes32
    buyer: uint256       # the buyer's address, as a word (one calldata copy per item)
    nonce: uint256
    price_wei: uint256

event Recorded:
    lease_id: indexed(bytes32)
    buyer: address
    price_wei: uint256

free: public(HashMap[address, uint256])
used: public(HashMap[bytes32, bool])


@external
def fund(buyers: DynArray[address, MAX_ITEMS], amount_wei: uint256):
    for buyer: address in buyers:
        self.free[buyer] += amount_wei


@external
def settle(items: DynArray[Item, MAX_ITEMS]):
    for i: uint256 in range(len(items), bound=MAX_ITEMS):
        item: Item = items[i]
        buyer: address = convert(item.buyer, address)
        assert ecrecover(item.digest, item.v, item.r, item.s) == buyer, "not signed by the buyer"
        lease_id: bytes32 = keccak256(abi_encode(buyer, item.nonce))
        assert not self.used[lease_id], "nonce already used"
        self.used[lease_id] = True
        self.free[buyer] -= item.price_wei
        log Recorded(lease_id=lease_id, buyer=buyer, price_wei=item.price_wei)
