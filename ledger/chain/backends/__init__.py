"""Chain backends: one interface (:class:`ChainBackend`), chosen by name.

========== ============================================================
name       what it is
========== ============================================================
embedded   eth-tester + py-evm in this process, persisted to SQLite (default)
rpc        any JSON-RPC endpoint (local testnets use anvil)
========== ============================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from .base import DEV_MNEMONIC, ChainBackend, dev_keys

__all__ = ["BACKENDS", "DEV_MNEMONIC", "ChainBackend", "dev_keys", "open_backend"]

BACKENDS = ("embedded", "rpc")


async def open_backend(name: str, **options: Any) -> ChainBackend:
    """Open a backend by name.

    ``embedded`` takes ``directory`` (None: in memory), ``chain_name``,
    ``chain_id``, ``genesis_timestamp``; ``rpc`` takes ``url`` and ``timeout_s``.
    """
    if name == "embedded":
        from .embedded import EmbeddedBackend

        directory: Path | str | None = options.pop("directory", None)
        return EmbeddedBackend(directory, **options)
    if name == "rpc":
        from .rpc import RpcBackend

        if "url" not in options:
            raise ConfigError("the rpc backend needs a url (for example http://127.0.0.1:8545)")
        return await RpcBackend.connect(options.pop("url"), **options)
    raise ConfigError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
