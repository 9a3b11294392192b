"""SettleFloor, the bench's ceiling contract, really does the per-lease work it stands for:
it recovers every buyer's signature, marks every nonce used and debits every buyer."""

from __future__ import annotations

from eth_account import Account
from eth_utils import keccak

from ledger.chain import LedgerClient, dev_keys, open_backend
from ledger.eip712 import sign_digest

from .test_region_market import reverts

KEYS = [(0xF1 << 32 | i).to_bytes(32, "big") for i in range(3)]
BUYERS = [Account.from_key(k).address for k in KEYS]


def item(i: int, nonce: int, signer: int | None = None, price: int = 10**12) -> tuple:
    digest = keccak(nonce.to_bytes(32, "big") + KEYS[i])
    sig = sign_digest(KEYS[i if signer is None else signer], digest)
    return (digest, sig.v, sig.r, sig.s, int(BUYERS[i], 16), nonce, price)


async def test_floor_checks_signatures_nonces_and_escrow():
    chain = await open_backend("embedded", directory=None, chain_id=779)
    try:
        floor = await LedgerClient(chain, dev_keys()[0]).deploy("SettleFloor")
        await floor.transact("fund", BUYERS, 10**15, gas=300_000)
        receipt = await floor.transact("settle", [item(0, 1), item(1, 1)], gas=500_000)
        assert [e.args["buyer"] for e in receipt.events] == BUYERS[:2]
        assert await floor.call("free", BUYERS[0]) == 10**15 - 10**12
        await reverts("not signed by the buyer", floor.transact("settle", [item(2, 1, signer=0)]))
        await reverts("nonce already used", floor.transact("settle", [item(2, 1), item(0, 1)]))
        assert await floor.call("free", BUYERS[2]) == 10**15  # nothing of a refused batch stays
    finally:
        await chain.close()
