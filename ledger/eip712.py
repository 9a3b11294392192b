"""EIP-712 typed data for the market contracts, hashed the way the contracts do.

Signing an offer, a bid or a settlement is on the hot path of every epoch, so
the struct hashes are computed directly with ``eth_abi`` and keccak (eth-account's
generic ``encode_typed_data`` gives the same digest — a test checks it — but is
much slower), and the digest is signed with the raw key.

Every signature is over ``keccak256("\\x19\\x01" ++ domainSeparator ++ structHash)``
with the domain ``(name, version "1", chainId, verifyingContract)``, so a
signature for one contract on one chain is worthless on any other.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import coincurve
from eth_abi import encode
from eth_account import Account
from eth_keys import keys
from eth_utils import keccak, to_canonical_address

from .addresses import address_of_public_key

__all__ = [
    "BID_TYPE",
    "LEASE_STEP_TYPE",
    "LIFECYCLE_TYPE",
    "OFFER_TYPE",
    "REGISTRATION_TYPE",
    "Sig",
    "abi_words",
    "domain_separator",
    "quorum_sign",
    "recover",
    "sign_digest",
    "struct_hash",
    "typed_digest",
]

DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
OFFER_TYPE = (
    "Offer(uint256 region,address seller,uint256 kind,uint256 lo,uint256 hi,uint256 start,"
    "uint256 end,uint256 reserveWei,uint256 nonce)"
)
BID_TYPE = (
    "Bid(uint256 region,address buyer,uint256 kind,uint256 lo,uint256 hi,uint256 units,"
    "uint256 start,uint256 end,uint256 maxPriceWei,uint256 nonce)"
)
SETTLEMENT_TYPE = (
    "Settlement(uint256 region,uint256 epoch,bytes32 orderbookRoot,bytes32 leasesHash,"
    "bytes32 stepsHash)"
)
LIFECYCLE_TYPE = "Lifecycle(uint256 region,uint256 nonce,bytes32 stepsHash)"
REGISTRATION_TYPE = "Registration(uint256 region,address who,uint256 role)"
#: what a lease's party signs off chain for one lifecycle step (the committee and the
#: audit check it; the contract hashes it into what the quorum signs)
LEASE_STEP_TYPE = "LeaseStep(uint256 region,bytes32 leaseId,uint256 action,uint256 at)"
ROTATION_TYPE = "Rotation(uint256 region,bytes32 membersHash,uint256 threshold,uint256 configNonce)"
MECHANISM_TYPE = (
    "Mechanism(uint256 region,uint256 mechanismId,bytes32 paramsHash,uint256 configNonce)"
)
REGION_TYPE = (
    "Region(uint256 region,uint256 shardChainId,address market,bytes32 membersHash,"
    "uint256 threshold,uint256 mechanismId,uint256 configNonce)"
)
VOTE_TYPE = "CrossVote(bytes32 xleaseId,uint256 region,bool commit)"
CHECKPOINT_TYPE = (
    "Checkpoint(uint256 region,uint256 blockNumber,bytes32 blockHash,bytes32 leaseRoot)"
)

_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # secp256k1's order
HALF_N = _N // 2


@dataclass(frozen=True)
class Sig:
    """An ECDSA signature as the contracts take it: (v, r, s), s in the lower half."""

    v: int
    r: bytes
    s: bytes

    def as_tuple(self) -> tuple[int, bytes, bytes]:
        return (self.v, self.r, self.s)


def _type_hash(type_string: str) -> bytes:
    return keccak(text=type_string)


_TYPEHASHES: dict[str, bytes] = {}


_UINT256_END = 1 << 256


@functools.lru_cache(maxsize=65536)
def _address_word(value: str) -> bytes:
    return encode(["address"], [value])  # validates it (hex, checksum) as eth_abi does


def abi_words(abi_types: Sequence[str], values: Sequence[Any]) -> bytes:
    """``eth_abi.encode`` for static one-word types, several times faster on the hot path.

    uint256 ints, bytes32 bytes and address strings (validated once each, then cached)
    are packed directly; anything else, including every value eth_abi would refuse,
    goes to eth_abi itself, so the bytes and the errors are the same."""
    out = []
    for t, v in zip(abi_types, values, strict=True):
        if t == "uint256" and type(v) is int and 0 <= v < _UINT256_END:
            out.append(v.to_bytes(32, "big"))
        elif t == "bytes32" and type(v) is bytes and len(v) == 32:
            out.append(v)
        elif t == "address" and type(v) is str:
            out.append(_address_word(v))
        else:
            out.append(encode([t], [v]))
    return b"".join(out)


def struct_hash(type_string: str, abi_types: list[str], values: list[Any]) -> bytes:
    """keccak256(abi_encode(TYPEHASH, *values)) — the hashStruct of EIP-712 for flat structs."""
    th = _TYPEHASHES.get(type_string)
    if th is None:
        th = _TYPEHASHES[type_string] = _type_hash(type_string)
    return keccak(th + abi_words(abi_types, values))


def domain_separator(name: str, chain_id: int, contract: str) -> bytes:
    """The EIP-712 domain separator of a contract instance."""
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _type_hash(DOMAIN_TYPE),
                keccak(text=name),
                keccak(text="1"),
                chain_id,
                to_canonical_address(contract),
            ],
        )
    )


def typed_digest(domain: bytes, struct: bytes) -> bytes:
    return keccak(b"\x19\x01" + domain + struct)


def sign_digest(private_key: bytes, digest: bytes) -> Sig:
    """Sign a 32-byte digest; low-s form, v in {27, 28} as ecrecover expects.

    libsecp256k1 through coincurve directly: the same signature eth-keys gives (RFC 6979,
    low s; a test checks it), without its key and signature objects."""
    raw = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    assert int.from_bytes(raw[32:64], "big") <= HALF_N  # libsecp256k1 signs with low s
    return Sig(v=raw[64] + 27, r=raw[:32], s=raw[32:64])


def recover(digest: bytes, sig: Sig) -> str:
    """The checksummed address that produced ``sig`` over ``digest``.

    A well-formed signature is recovered with coincurve directly; anything else goes
    through eth-keys, which refuses it as it always has."""
    v = sig.v - 27
    if (
        v in (0, 1)
        and type(sig.r) is bytes
        and type(sig.s) is bytes
        and len(sig.r) == len(sig.s) == len(digest) == 32
        and 0 < int.from_bytes(sig.r, "big") < _N
        and 0 < int.from_bytes(sig.s, "big") < _N
    ):
        public = coincurve.PublicKey.from_signature_and_message(
            sig.r + sig.s + bytes((v,)), digest, hasher=None
        )
        return address_of_public_key(public.format(compressed=False))
    vrs = (v, int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big"))
    return keys.Signature(vrs=vrs).recover_public_key_from_msg_hash(digest).to_checksum_address()


def quorum_sign(digest: bytes, keys: Sequence[bytes]) -> list[Sig]:
    """Signatures of ``keys`` over ``digest``, ordered by signer address as the contracts want."""
    ordered = sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))
    return [sign_digest(k, digest) for k in ordered]
