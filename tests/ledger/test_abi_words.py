"""``abi_words``, the hot-path encoder behind every struct hash, is eth_abi's ``encode``."""

from __future__ import annotations

import pytest
from eth_abi import encode
from hypothesis import given
from hypothesis import strategies as st

from ledger.eip712 import abi_words

ADDRESS = "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4"
WORD = st.one_of(
    st.tuples(st.just("uint256"), st.integers(0, 2**256 - 1)),
    st.tuples(st.just("bytes32"), st.binary(min_size=32, max_size=32)),
    st.tuples(st.just("address"), st.sampled_from([ADDRESS, ADDRESS.lower(), "0x" + "00" * 20])),
    st.tuples(st.just("bool"), st.booleans()),
)


@given(st.lists(WORD, max_size=12))
def test_same_bytes_as_eth_abi(items):
    types, values = [t for t, _ in items], [v for _, v in items]
    assert abi_words(types, values) == encode(types, values)


@pytest.mark.parametrize(
    ("abi_type", "value"),
    [
        ("uint256", -1),
        ("uint256", 2**256),
        ("uint256", True),  # a bool is no integer to eth_abi
        ("uint256", "7"),
        ("bytes32", b"\1" * 33),
        ("bytes32", "0x" + "11" * 32),
        ("address", "0x" + "zz" * 20),
        ("address", "0x1234"),
        ("address", 5),
    ],
)
def test_refuses_what_eth_abi_refuses(abi_type, value):
    with pytest.raises(Exception) as theirs:
        encode([abi_type], [value])
    with pytest.raises(type(theirs.value)):
        abi_words([abi_type], [value])


def test_a_short_bytes32_is_padded_as_eth_abi_pads_it():
    assert abi_words(["bytes32"], [b"\1" * 31]) == encode(["bytes32"], [b"\1" * 31])
