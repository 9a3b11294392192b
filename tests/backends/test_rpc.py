"""The conformance suite on the rpc backend against a real anvil, plus node failures."""

from __future__ import annotations

import pytest

from ledger.chain import LedgerClient, dev_keys, open_backend
from ledger.chain.testnet import AnvilNode, free_port, stop_node
from ledger.errors import ConfigError, NodeUnavailable

from .conformance import BackendConformance

pytestmark = pytest.mark.anvil


class TestRpcConformance(BackendConformance):
    @pytest.fixture
    async def backend(self, anvil_node: AnvilNode):
        chain = await open_backend("rpc", url=anvil_node.url)
        yield chain
        await chain.close()


async def test_unreachable_url_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NodeUnavailable, match=f"no JSON-RPC node answers at {url}"):
        await open_backend("rpc", url=url, timeout_s=2)


async def test_node_that_dies_is_reported_after_retries(anvil_node: AnvilNode):
    chain = await open_backend("rpc", url=anvil_node.url)
    client = LedgerClient(chain, dev_keys()[0], retries=2, timeout_s=2)
    probe = await client.deploy("Probe", 0)
    stop_node(anvil_node)
    with pytest.raises(NodeUnavailable, match="after 3 tries"):
        await probe.call("value")
    await chain.close()


async def test_bad_url_and_unknown_backend_are_refused():
    with pytest.raises(ConfigError, match="must start with http"):
        await open_backend("rpc", url="127.0.0.1:8545")
    with pytest.raises(ConfigError, match="unknown backend 'geth'"):
        await open_backend("geth")


async def test_requests_reuse_one_connection(anvil_node: AnvilNode, monkeypatch):
    """web3's own session closes the connection after every request; ours keeps it."""
    import socket

    chain = await open_backend("rpc", url=anvil_node.url)
    connects = []
    real = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda s, a: connects.append(a) or real(s, a))
    for _ in range(20):
        await chain.web3.eth.block_number
    assert len(connects) <= 1
    await chain.close()


async def test_a_send_returns_its_receipt_in_one_request(anvil_node: AnvilNode, monkeypatch):
    """anvil has eth_sendRawTransactionSync (EIP-7966): no receipt polling."""
    chain = await open_backend("rpc", url=anvil_node.url)
    client = LedgerClient(chain, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    methods = []
    provider = chain.web3.provider
    real = provider.make_request

    async def record(method, params):
        methods.append(method)
        return await real(method, params)

    monkeypatch.setattr(provider, "make_request", record)
    receipt = await probe.transact("increment", 2, gas=100_000)
    assert receipt.event("Incremented").args["value"] == 2
    assert "eth_sendRawTransactionSync" in methods
    assert "eth_getTransactionReceipt" not in methods
    await chain.close()


async def test_a_node_without_the_one_request_send_is_asked_once(
    anvil_node: AnvilNode, monkeypatch
):
    chain = await open_backend("rpc", url=anvil_node.url)
    client = LedgerClient(chain, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    methods = []
    provider = chain.web3.provider
    real = provider.make_request

    asked: list[str] = []  # the transaction hashes whose receipts were asked for

    async def without_sync(method, params):
        methods.append(method)
        if method == "eth_getTransactionReceipt":
            asked.append(params[0])
        if method == "eth_sendRawTransactionSync":
            return {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "not found"}}
        return await real(method, params)

    monkeypatch.setattr(provider, "make_request", without_sync)
    for by in (1, 2):
        await probe.transact("increment", by, gas=100_000)
    assert await probe.call("value") == 3
    assert methods.count("eth_sendRawTransactionSync") == 1  # then the ordinary send
    # receipts only of the two transactions sent (a busy node may need a second poll)
    assert len(set(asked)) == 2
    assert chain._sync_send is False
    await chain.close()


async def test_a_refused_one_request_send_reports_the_nodes_reason(anvil_node: AnvilNode):
    """A transaction the node refuses (here: it costs more than the sender has) raises
    the node's reason, as the ordinary send does; nothing is left pending."""
    from eth_account import Account

    chain = await open_backend("rpc", url=anvil_node.url)
    poor = LedgerClient(chain, Account.create().key)
    with pytest.raises(Exception, match="(?i)insufficient funds"):
        await poor.send(dev_keys_address(), value=1, gas=21_000)
    assert await chain.web3.eth.get_transaction_count(poor.address) == 0
    await chain.close()


def dev_keys_address() -> str:
    from eth_account import Account

    return Account.from_key(dev_keys()[0]).address


async def test_a_send_whose_answer_was_lost_is_not_sent_twice(anvil_node: AnvilNode, monkeypatch):
    """The node mines the transaction but the answer never arrives; the retried request
    finds the nonce used by that very transaction and waits for it instead of re-signing."""
    import aiohttp

    chain = await open_backend("rpc", url=anvil_node.url)
    client = LedgerClient(chain, dev_keys()[0])
    probe = await client.deploy("Probe", 0)
    real = chain.send_and_wait
    lost = []

    async def answer_lost_once(raw: bytes):
        result = await real(raw)
        if not lost:
            lost.append(raw)
            raise aiohttp.ClientConnectionError("connection reset after the node took it")
        return result

    monkeypatch.setattr(chain, "send_and_wait", answer_lost_once)
    nonce = await chain.web3.eth.get_transaction_count(client.address)
    receipt = await probe.transact("increment", 5, gas=100_000)
    assert lost and receipt.event("Incremented").args["value"] == 5
    assert await probe.call("value") == 5
    assert await chain.web3.eth.get_transaction_count(client.address) == nonce + 1
    await chain.close()
