"""One conformance suite that every chain backend must pass.

Subclass :class:`BackendConformance` and give it an async ``backend`` fixture
(as eth-tester's ``backend_testing.py`` is subclassed per backend). A backend
that cannot do something sets the matching ``supports_*`` flag and the test
skips with the reason.
"""

from __future__ import annotations

import asyncio

import pytest

from ledger.chain import ChainBackend, LedgerClient, LogIndex, dev_keys
from ledger.errors import TransactionReverted

GAS = 100_000


class BackendConformance:
    """Deploy, transact, call, reverts, events, block time, snapshots, nonces."""

    @pytest.fixture
    def client(self, backend: ChainBackend) -> LedgerClient:
        return LedgerClient(backend, dev_keys()[0])

    async def test_chain_id_is_the_chains_own(self, backend: ChainBackend, client: LedgerClient):
        assert await client.chain_id() == await backend.chain_id()
        assert await client.chain_id() not in (1, 131277322940537)

    async def test_dev_accounts_are_funded(self, client: LedgerClient):
        assert await client.balance() >= 1_000 * 10**18

    async def test_deploy_call_transact(self, client: LedgerClient):
        probe = await client.deploy("Probe", 7)
        assert await probe.call("value") == 7
        assert await probe.call("owner") == client.address
        receipt = await probe.transact("increment", 5)
        assert receipt.status == 1 and receipt.gas_used > 21_000
        assert await probe.call("value") == 12

    async def test_events_are_decoded_from_receipts(self, client: LedgerClient):
        probe = await client.deploy("Probe", 0)
        receipt = await probe.transact("increment", 3, gas=GAS)
        event = receipt.event("Incremented")
        assert event.args["sender"] == client.address
        assert (event.args["by"], event.args["value"]) == (3, 3)
        assert event.block_number == receipt.block_number
        assert event.tx_hash == receipt.tx_hash

    @pytest.mark.parametrize("explicit_gas", [None, GAS], ids=["estimated", "mined"])
    async def test_revert_reason_surfaces(self, client: LedgerClient, explicit_gas: int | None):
        probe = await client.deploy("Probe", 0)
        with pytest.raises(TransactionReverted) as err:
            await probe.transact("increment", 0, gas=explicit_gas)
        assert err.value.reason == "increment must be positive"
        if explicit_gas is not None:  # it was mined with status 0
            assert err.value.tx_hash is not None

    async def test_revert_reason_of_a_call(self, backend: ChainBackend, client: LedgerClient):
        probe = await client.deploy("Probe", 0)
        stranger = LedgerClient(backend, dev_keys()[1]).bind(probe.artifact, probe.address)
        with pytest.raises(TransactionReverted, match="only the owner may reset"):
            await stranger.call("reset")

    async def test_block_timestamps_follow_the_caller(
        self, backend: ChainBackend, client: LedgerClient
    ):
        probe = await client.deploy("Probe", 0)
        head = await backend.web3.eth.get_block("latest")
        target = int(head["timestamp"]) + 3_600
        await backend.set_next_block_timestamp(target)
        receipt = await probe.transact("increment", 1, gas=GAS)
        assert receipt.event("Incremented").args["at"] == target
        number = await backend.mine(target + 60)
        assert (await backend.web3.eth.get_block(number))["timestamp"] == target + 60

    async def test_snapshot_and_revert(self, backend: ChainBackend, client: LedgerClient):
        if not backend.supports_snapshots:
            pytest.skip(f"{backend.name} has no snapshots")
        probe = await client.deploy("Probe", 1)
        snap = await backend.snapshot()
        await probe.transact("increment", 10, gas=GAS)
        assert await probe.call("value") == 11
        await backend.revert(snap)
        client.nonces.forget()  # the reverted transaction's nonce is free again
        assert await probe.call("value") == 1
        await probe.transact("increment", 2, gas=GAS)
        assert await probe.call("value") == 3

    async def test_concurrent_sends_never_collide_or_leave_gaps(
        self, backend: ChainBackend, client: LedgerClient
    ):
        probe = await client.deploy("Probe", 0)
        start = await backend.web3.eth.get_transaction_count(client.address)
        receipts = await asyncio.gather(
            *(probe.transact("increment", 1, gas=GAS) for _ in range(30))
        )
        assert len({r.tx_hash for r in receipts}) == 30
        assert await probe.call("value") == 30
        assert await backend.web3.eth.get_transaction_count(client.address) == start + 30

    async def test_log_index_follows_blocks(self, backend: ChainBackend, client: LedgerClient):
        probe = await client.deploy("Probe", 0)
        index = LogIndex(client)
        index.watch(probe)
        for by in (1, 2, 3):
            await probe.transact("increment", by, gas=GAS)
        assert await index.sync() == 3
        other = LedgerClient(backend, dev_keys()[2]).bind(probe.artifact, probe.address)
        await other.transact("increment", 4, gas=GAS)  # sent by someone else
        assert await index.sync() == 1
        assert [e.args["by"] for e in index.of("Incremented")] == [1, 2, 3, 4]
        assert await index.sync() == 0  # nothing is indexed twice

    async def test_two_clients_with_one_key_recover_from_stale_nonces(
        self, backend: ChainBackend, client: LedgerClient
    ):
        twin = LedgerClient(backend, dev_keys()[0])  # same key, its own nonce counter
        probe = await client.deploy("Probe", 0)
        twin_probe = twin.bind(probe.artifact, probe.address)
        for _ in range(3):
            await probe.transact("increment", 1, gas=GAS)
            await twin_probe.transact("increment", 1, gas=GAS)
        assert await probe.call("value") == 6

    async def test_a_send_whose_every_answer_was_lost_is_found_by_its_hash(
        self, backend: ChainBackend, client: LedgerClient, monkeypatch: pytest.MonkeyPatch
    ):
        """The first request reaches the node and the transaction lands, but no answer
        comes back, and every retry fails too: the client asks for the receipt by the
        transaction's hash and returns it, instead of failing a send that happened."""
        probe = await client.deploy("Probe", 0)
        real_sync, real_send = backend.send_and_wait, client.web3.eth.send_raw_transaction
        sent: list[bytes] = []

        async def lost_sync(raw: bytes):  # type: ignore[no-untyped-def]
            if not sent:
                sent.append(raw)
                if await real_sync(raw) is None:  # this backend sends the ordinary way
                    await real_send(raw)
            raise ConnectionError("connection reset (injected)")

        async def lost_send(raw: bytes):  # type: ignore[no-untyped-def]
            if not sent:
                sent.append(raw)
                await real_send(raw)
            raise ConnectionError("connection reset (injected)")

        monkeypatch.setattr(backend, "send_and_wait", lost_sync)
        monkeypatch.setattr(client.web3.eth, "send_raw_transaction", lost_send)
        receipt = await probe.transact("increment", 5, gas=GAS)
        monkeypatch.undo()
        assert receipt.status == 1 and len(sent) == 1
        assert await probe.call("value") == 5
        await probe.transact("increment", 1, gas=GAS)  # the nonce after it is the next one
        assert await probe.call("value") == 6
