"""The shape of a market message, field by field: what every order must be before anyone
looks inside it.

An offer or a bid reaches a sequencer from anyone, so each of its fields is checked for
exactly what the contract's struct holds: uint256 fields are ints in ``[0, 2**256)``
(never a bool, a float or a str), addresses are checksummed 20-byte hex strings, a
signature is ``(v, r, s)`` with ``v`` 27 or 28, 32-byte ``r`` and ``s`` and ``s`` in the
lower half (the contract's "malleable signature" rule). :func:`order_problem` says what
is wrong with a signed order, :func:`lease_problem` with a settlement's lease; ``None``
when nothing is. The sequencer's admission and the committee's settlement check
(:mod:`ledger.region.rules`) use the same functions.

:func:`signer` recovers a signature's address, memoised: the sequencer recovers every
order at admission and each validator again at settlement, over the same bytes.
"""

from __future__ import annotations

import functools
import re
from dataclasses import fields
from typing import Any

from ..addresses import checksum_address
from ..eip712 import HALF_N, Sig, recover
from ..records import Bid, LeaseIn, Offer, SignedBid, SignedOffer

__all__ = ["UINT256", "lease_problem", "order_problem", "sig_problem", "signer"]

UINT256 = 1 << 256
_N = 2 * HALF_N + 1  # secp256k1's group order
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_ADDRESS_FIELDS = {"seller", "buyer"}


def _uint_problem(name: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an integer, got {type(value).__name__} {value!r:.40}"
    if not 0 <= value < UINT256:
        return f"{name} {value} is outside uint256 [0, 2**256)"
    return None


def _address_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str) or not _HEX_ADDRESS.fullmatch(value):
        return f"{name} {value!r:.50} is not a 0x-prefixed 20-byte hex address"
    if checksum_address(value) != value:
        return f"{name} {value} is not in its checksummed form"
    return None


def _record_problem(record: Any, cls: type[Any]) -> str | None:
    if not isinstance(record, cls):
        return f"expected {cls.__name__}, got {type(record).__name__}"
    for f in fields(cls):
        value = getattr(record, f.name)
        if f.name in _ADDRESS_FIELDS:
            problem = _address_problem(f.name, value)
        else:
            problem = _uint_problem(f.name, value)
        if problem is not None:
            return problem
    return None


def sig_problem(sig: Any, what: str = "signature") -> str | None:
    """What is wrong with a signature's shape, or None (it may still be someone else's)."""
    if not isinstance(sig, Sig):
        return f"{what}: expected Sig, got {type(sig).__name__}"
    if isinstance(sig.v, bool) or not isinstance(sig.v, int) or sig.v not in (27, 28):
        return f"{what}: v must be 27 or 28, got {sig.v!r:.40}"
    for name in ("r", "s"):
        value = getattr(sig, name)
        if type(value) is not bytes or len(value) != 32:
            return f"{what}: {name} must be 32 bytes, got {type(value).__name__} {value!r:.40}"
    r, s = int.from_bytes(sig.r, "big"), int.from_bytes(sig.s, "big")
    if not 0 < r < _N or s == 0:
        return f"{what}: r and s must be nonzero and below the curve order"
    if s > HALF_N:
        return f"{what}: malleable signature (s in the upper half)"
    return None


def order_problem(signed: Any) -> str | None:
    """What is wrong with the shape of a :class:`SignedOffer` or :class:`SignedBid`."""
    if isinstance(signed, SignedOffer):
        return _record_problem(signed.offer, Offer) or sig_problem(signed.sig)
    if isinstance(signed, SignedBid):
        return _record_problem(signed.bid, Bid) or sig_problem(signed.sig)
    return f"expected a signed offer or bid, got {type(signed).__name__}"


def lease_problem(lease: Any) -> str | None:
    """What is wrong with the shape of one lease of a settlement."""
    if not isinstance(lease, LeaseIn):
        return f"expected LeaseIn, got {type(lease).__name__}"
    return (
        _record_problem(lease.offer, Offer)
        or sig_problem(lease.offer_sig, "offer signature")
        or _record_problem(lease.bid, Bid)
        or sig_problem(lease.bid_sig, "bid signature")
        or _uint_problem("first", lease.first)
        or _uint_problem("price_wei", lease.price_wei)
    )


@functools.lru_cache(maxsize=1 << 16)
def _recover(digest: bytes, v: int, r: bytes, s: bytes) -> str | None:
    try:
        return recover(digest, Sig(v, r, s))
    except Exception:  # not a point on the curve: nobody's signature
        return None


def signer(digest: bytes, sig: Sig) -> str | None:
    """The address that signed ``digest`` (a well-shaped ``sig``: :func:`sig_problem`),
    or None when the signature recovers to nobody."""
    return _recover(digest, sig.v, sig.r, sig.s)
