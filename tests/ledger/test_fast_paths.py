"""The hot paths are the libraries they replace: ``abi_words`` is eth_abi's ``encode``,
``sign_digest`` and ``recover`` are eth-keys' signing and recovery."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_keys import keys
from hypothesis import given
from hypothesis import strategies as st

from ledger.eip712 import Sig, abi_words, recover, sign_digest

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


KEYS = st.integers(1, 2**256 - 2**129).map(lambda k: k.to_bytes(32, "big"))
DIGESTS = st.binary(min_size=32, max_size=32)


@given(KEYS, DIGESTS)
def test_signatures_are_eth_keys_signatures(key, digest):
    ours = sign_digest(key, digest)
    theirs = keys.PrivateKey(key).sign_msg_hash(digest)
    assert (ours.v, ours.r, ours.s) == (
        theirs.v + 27,
        theirs.r.to_bytes(32, "big"),
        theirs.s.to_bytes(32, "big"),
    )
    assert recover(digest, ours) == keys.PrivateKey(key).public_key.to_checksum_address()


N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@given(DIGESTS, st.integers(0, 2**256 - 1), st.integers(0, 2**256 - 1), st.sampled_from([27, 28]))
def test_recovery_of_any_signature_agrees_with_eth_keys(digest, r, s, v):
    sig = Sig(v, r.to_bytes(32, "big"), s.to_bytes(32, "big"))
    try:
        theirs = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except Exception:
        with pytest.raises(Exception):  # noqa: B017 - eth-keys and coincurve differ in type
            recover(digest, sig)
    else:
        assert recover(digest, sig) == theirs.to_checksum_address()


@pytest.mark.parametrize(
    "sig",
    [
        Sig(29, b"\1" * 32, b"\1" * 32),  # v out of range
        Sig(27, b"\0" * 32, b"\1" * 32),  # r = 0
        Sig(27, b"\1" * 32, N.to_bytes(32, "big")),  # s = n
        Sig(27, b"\1" * 31, b"\1" * 32),  # a short r
    ],
)
def test_malformed_signatures_are_refused(sig):
    with pytest.raises(Exception):  # noqa: B017 - whatever eth-keys raises for it
        recover(b"\2" * 32, sig)
