"""The conformance suite on the embedded backend, plus persistence across processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger.chain import LedgerClient, LogIndex, dev_keys, open_backend
from ledger.chain.backends.embedded import EmbeddedBackend
from ledger.errors import ChainDataError, ConfigError

from .conformance import GAS, BackendConformance


class TestEmbeddedConformance(BackendConformance):
    @pytest.fixture
    async def backend(self, tmp_path: Path):
        chain = await open_backend("embedded", directory=tmp_path, chain_name="conf")
        yield chain
        await chain.close()


class TestEmbeddedInMemory(BackendConformance):
    @pytest.fixture
    async def backend(self):
        chain = await open_backend("embedded", directory=None, chain_id=777)
        yield chain
        await chain.close()


async def _write_chain(directory: Path) -> dict:
    chain = EmbeddedBackend(directory, chain_name="root", chain_id=4242)
    client = LedgerClient(chain, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    for by in range(1, 6):
        await probe.transact("increment", by, gas=GAS)
    head = await chain.web3.eth.get_block("latest")
    hashes = [(await chain.web3.eth.get_block(n))["hash"] for n in range(head["number"] + 1)]
    await chain.close()
    return {"address": probe.address, "hashes": hashes, "head": head["number"]}


async def test_reopen_after_close_keeps_blocks_receipts_and_logs(tmp_path: Path):
    written = await _write_chain(tmp_path)
    chain = EmbeddedBackend(tmp_path, chain_name="root")
    assert await chain.chain_id() == 4242
    for number, expected in enumerate(written["hashes"]):
        assert (await chain.web3.eth.get_block(number))["hash"] == expected
    client = LedgerClient(chain, dev_keys()[0])
    index = LogIndex(client)
    index.watch(client.bind("Probe", written["address"]))
    await index.sync()
    assert [e.args["value"] for e in index.of("Incremented")] == [1, 3, 6, 10, 15]
    # the reopened chain keeps going from where it stopped
    await client.bind("Probe", written["address"]).transact("increment", 1, gas=GAS)
    assert await chain.web3.eth.block_number == written["head"] + 1
    await chain.close()


@pytest.mark.multiproc
async def test_another_process_reopens_the_chain(tmp_path: Path):
    written = await _write_chain(tmp_path)
    script = textwrap.dedent(f"""
        import asyncio
        from ledger.chain.backends.embedded import EmbeddedBackend
        async def main():
            chain = EmbeddedBackend({str(tmp_path)!r}, chain_name="root", read_only=True)
            block = await chain.web3.eth.get_block({written["head"]})
            print(block["hash"].hex())
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == written["hashes"][-1].hex()


async def test_each_chain_gets_its_own_chain_id(tmp_path: Path):
    a = EmbeddedBackend(tmp_path, chain_name="region-0")
    b = EmbeddedBackend(tmp_path, chain_name="region-1")
    assert await a.chain_id() != await b.chain_id()
    await a.close()
    await b.close()


async def test_reopen_with_another_chain_id_is_refused(tmp_path: Path):
    await (EmbeddedBackend(tmp_path, chain_name="c", chain_id=5)).close()
    with pytest.raises(ConfigError, match="holds chain id 5"):
        EmbeddedBackend(tmp_path, chain_name="c", chain_id=6)


def test_damaged_chain_file_is_refused(tmp_path: Path):
    path = tmp_path / "c.chain.sqlite"
    path.write_bytes(b"this is not an sqlite database" * 100)
    with pytest.raises(ChainDataError, match="unreadable"):
        EmbeddedBackend(tmp_path, chain_name="c")


def test_missing_chain_read_only_is_refused(tmp_path: Path):
    with pytest.raises(ChainDataError, match="no embedded chain"):
        EmbeddedBackend(tmp_path, chain_name="nothing", read_only=True)


async def test_timestamp_in_the_past_is_refused(tmp_path: Path):
    chain = EmbeddedBackend(None, genesis_timestamp=2_000_000_000)
    with pytest.raises(ConfigError, match="not after"):
        await chain.set_next_block_timestamp(1_000)


async def test_plain_receipts_match_eth_testers_serializer():
    """The direct receipt path gives what eth-tester's serializer gives: a deployment,
    and a block of several transactions (gas used per transaction, log positions)."""
    from eth_tester.backends.pyevm.serializers import serialize_transaction_receipt

    chain = await open_backend("embedded", directory=None, chain_id=778)
    client = LedgerClient(chain, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    tester = chain.tester
    backend = tester.backend
    nonce = tester.get_nonce(client.address)
    for by in (1, 2, 3):  # three transactions in one block, below eth-tester
        raw = client.sign(
            {
                "nonce": nonce + by - 1,
                "to": probe.address,
                "value": 0,
                "gas": GAS,
                "gasPrice": 10**10,
                "chainId": 778,
                "data": probe.encode("increment", by),
            }
        )
        backend.chain.apply_transaction(
            backend.chain.get_vm().get_transaction_builder().decode(raw)
        )
    tester.mine_blocks(1)
    head = backend.chain.get_canonical_head().block_number
    blocks = [backend.chain.get_canonical_block_by_number(n) for n in range(1, head + 1)]
    assert [len(b.transactions) for b in blocks][-1] == 3
    for block in blocks:
        receipts = block.get_receipts(backend.chain.chaindb)
        expected = []
        for i, tx in enumerate(block.transactions):
            r = serialize_transaction_receipt(block, receipts, tx, i, False, None)
            address = r["contract_address"]
            expected.append(
                {
                    "transactionHash": r["transaction_hash"],
                    "blockNumber": r["block_number"],
                    "gasUsed": r["gas_used"],
                    "status": r["status"],
                    "contractAddress": "0x" + address.hex() if address else None,
                    "logs": [
                        {
                            "address": "0x" + log["address"].hex(),
                            "topics": log["topics"],
                            "data": log["data"],
                            "blockNumber": log["block_number"],
                            "transactionHash": log["transaction_hash"],
                            "logIndex": log["log_index"],
                        }
                        for log in r["logs"]
                    ],
                }
            )
        assert backend.plain_receipts(block) == expected
    assert any(r["contractAddress"] for b in blocks for r in backend.plain_receipts(b))
    await chain.close()
