"""The keccak implementation behind eth-hash, chosen by the program, not at import.

eth-hash (and so eth-utils, eth-account and py-evm) picks its backend at the
first hash, pycryptodome first. safe-pysha3 (a dependency, module ``sha3``)
hashes about 4x faster, which speeds up py-evm, signing and log decoding alike
(bench ledger: +6-9%). Entry points call :func:`use_fast_keccak` (the CLI, the
test suite, a region worker process); a library user who does not keeps
eth-hash's own choice. Nothing is written to the environment.

It lives outside ``ledger.chain`` (which re-exports it) so that choosing costs
nothing but eth-hash: importing this module loads no chain library, and the CLI's
group makes the choice before every command, a bad scenario file included.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = ["keccak_backend", "use_fast_keccak"]


def use_fast_keccak() -> str:
    """Make eth-hash use safe-pysha3 when it is installed and the user named no backend
    (``ETH_HASH_BACKEND`` wins); returns the backend in use."""
    from eth_hash.auto import keccak

    if "ETH_HASH_BACKEND" not in os.environ and importlib.util.find_spec("sha3") is not None:
        from eth_hash.utils import load_backend

        backend = load_backend("pysha3")
        # eth-hash's Keccak256 caches its hasher after the first call: set both, so the
        # choice holds whether or not something hashed already
        keccak._backend = backend
        keccak.hasher = backend.keccak256  # type: ignore[method-assign]
        keccak.preimage = backend.preimage  # type: ignore[method-assign]
    return keccak_backend()


def keccak_backend() -> str:
    """The class name of the backend eth-hash hashes with (``PySha3Backend``, ...)."""
    from eth_hash.auto import keccak

    keccak(b"")  # the backend is chosen at the first hash
    return type(getattr(keccak.hasher, "__self__", None)).__name__
