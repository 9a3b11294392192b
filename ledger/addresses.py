"""Checksummed addresses, cached: a checksum costs a keccak, and the same few hundred
addresses recur in every epoch's orders, signatures and events."""

from __future__ import annotations

import functools

from eth_utils import keccak, to_checksum_address

__all__ = ["address_of_public_key", "checksum_address"]

checksum_address = functools.lru_cache(maxsize=1 << 16)(to_checksum_address)


def address_of_public_key(uncompressed: bytes) -> str:
    """The checksummed address of a 65-byte uncompressed secp256k1 public key."""
    return checksum_address(keccak(uncompressed[1:])[-20:])
