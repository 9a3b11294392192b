"""Fixtures shared by every test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.chain import use_fast_keccak
from ledger.chain.testnet import AnvilNode, anvil

use_fast_keccak()  # the suite is an entry point: it chooses eth-hash's keccak, as the CLI does


@pytest.fixture
def anvil_node() -> Iterator[AnvilNode]:
    """A fresh anvil for one test (0.1 s to start); the test must be marked ``anvil``."""
    with anvil("test") as node:
        yield node
