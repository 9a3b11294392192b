"""The lease-state Merkle tree that shard checkpoints commit to.

Same encoding as ``RootLedger.verify_lease`` (documented in contracts/RootLedger.vy)::

    leaf = keccak256(0x00 ++ lease_id ++ bytes32(lease_word))
    node = keccak256(0x01 ++ min(a, b) ++ max(a, b))     # sorted pair, no index needed

Leaves are sorted by lease id; an odd node at the end of a level is carried up
unchanged; an empty tree has root ``bytes32(0)``.
"""

from __future__ import annotations

from collections.abc import Mapping

from eth_utils import keccak

__all__ = ["EMPTY_ROOT", "LeaseTree", "leaf_hash", "merkle_root", "verify_proof"]

EMPTY_ROOT = b"\0" * 32


def leaf_hash(lease_id: bytes, lease_word: int) -> bytes:
    return keccak(b"\x00" + lease_id + lease_word.to_bytes(32, "big"))


def _node(a: bytes, b: bytes) -> bytes:
    return keccak(b"\x01" + min(a, b) + max(a, b))


class LeaseTree:
    """A Merkle tree over ``{lease_id: lease_word}``."""

    def __init__(self, leases: Mapping[bytes, int]) -> None:
        self.ids = sorted(leases)
        self._position = {lease_id: i for i, lease_id in enumerate(self.ids)}
        level = [leaf_hash(i, leases[i]) for i in self.ids]
        self.levels = [level]
        while len(level) > 1:
            level = [
                _node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
                for i in range(0, len(level), 2)
            ]
            self.levels.append(level)

    @property
    def root(self) -> bytes:
        return self.levels[-1][0] if self.levels[0] else EMPTY_ROOT

    def proof(self, lease_id: bytes) -> list[bytes]:
        """Sibling hashes from the leaf of ``lease_id`` up to the root."""
        index = self._position[lease_id]
        siblings = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):  # no sibling: the node is carried up as it is
                siblings.append(level[sibling])
            index //= 2
        return siblings


def verify_proof(root: bytes, lease_id: bytes, lease_word: int, proof: list[bytes]) -> bool:
    node = leaf_hash(lease_id, lease_word)
    for sibling in proof:
        node = _node(node, sibling)
    return node == root


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root of a sorted-pair tree over already-hashed ``leaves`` (sorted first)."""
    level = sorted(leaves)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = [
            _node(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]
