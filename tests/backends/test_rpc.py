"""The conformance suite on the rpc backend against a real anvil, plus node failures."""

from __future__ import annotations

import pytest

from ledger.backends import dev_keys, open_backend
from ledger.client import LedgerClient
from ledger.errors import ConfigError, NodeUnavailable
from ledger.testnet import AnvilNode, free_port, stop_node

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
