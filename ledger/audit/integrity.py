"""Integrity of persisted embedded chain files, before anything is read from them.

An embedded chain is a py-evm database in a SQLite file: an edit to a stored
block would be read back as if the chain had said it. So every stored block is
re-derived first: its header must hash to the key it is stored under, link to
its parent, and commit to its transactions and receipts. A chain that fails is
reported and nothing else is audited (see :func:`ledger.audit.run.run_audit`).
"""

from __future__ import annotations

from eth_typing import BlockNumber

from ..chain import ChainBackend
from ..errors import ChainDataError
from .result import Violation

__all__ = ["embedded_integrity"]


def embedded_integrity(backend: ChainBackend, name: str) -> list[Violation]:
    """Re-derive every stored block: header hash, parent link, transaction and receipt roots.

    Only an embedded chain's file can be checked here; any other backend is a node
    that keeps (and verifies) its own blocks, and gives no violations.
    """
    from eth.db.trie import make_trie_root_and_nodes

    from ..chain.backends.embedded import EmbeddedBackend

    if not isinstance(backend, EmbeddedBackend):
        return []
    chain = backend.evm_chain
    db = chain.chaindb
    try:
        head = chain.get_canonical_head().block_number
    except Exception as exc:  # a damaged head is itself the finding
        return [Violation("integrity", name, None, None, None, f"no readable head: {exc!r}")]
    parent = None
    for n in range(head + 1):
        try:
            block_hash = db.get_canonical_block_hash(BlockNumber(n))
            header = db.get_block_header_by_hash(block_hash)
            if header.hash != block_hash:
                raise ChainDataError("stored header does not hash to its key")
            if parent is not None and header.parent_hash != parent:
                raise ChainDataError("parent hash does not link to the previous block")
            block = chain.get_block_by_header(header)
            if make_trie_root_and_nodes(block.transactions)[0] != header.transaction_root:
                raise ChainDataError("transactions do not match the header's root")
            receipts = block.get_receipts(db)
            if make_trie_root_and_nodes(receipts)[0] != header.receipt_root:
                raise ChainDataError("receipts do not match the header's root")
        except Exception as exc:  # any failure to re-derive a block is the finding
            return [Violation("integrity", name, n, None, None, f"block does not verify: {exc}")]
        parent = block_hash
    return []
