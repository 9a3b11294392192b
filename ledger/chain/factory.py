"""Where a tiered ledger's chains come from: passed in as a factory, never as a name.

A :class:`ChainFactory` opens the chains of one ledger by name (``root``,
``region-1``, ...). :class:`EmbeddedChains` keeps each as a persisted py-evm
file in one folder; :class:`RpcChains` connects to the nodes of a testnet
manifest. The tiered ledger, the simulation and the audit take one of these
(or backends already open), so a test or an experiment swaps the chains without
touching them, and ``ledger.json`` records :meth:`ChainFactory.record` so the same
chains are found again by :func:`chains_from_record`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .backends import ChainBackend
from .testnet import load_manifest

__all__ = ["ChainFactory", "EmbeddedChains", "RpcChains", "chains_from_record", "root_first"]

CHAIN_SUFFIX = ".chain.sqlite"


def root_first(names: list[str]) -> list[str]:
    """Chain names with ``root`` first (the audit and the ledger read the root first)."""
    return (["root"] if "root" in names else []) + [n for n in names if n != "root"]


class ChainFactory(ABC):
    """Opens the chains of one ledger by name."""

    #: whether region committees settle in processes of their own by default (rpc: yes,
    #: so regions use separate cores; embedded chains live in this process)
    region_processes: bool = False

    @abstractmethod
    async def open(self, name: str, *, chain_id: int | None = None) -> ChainBackend:
        """The chain called ``name``, created when it does not exist yet (embedded)."""

    @abstractmethod
    def record(self, ledger_directory: Path) -> dict[str, Any]:
        """What ``ledger.json`` keeps so :func:`chains_from_record` finds these chains again."""

    async def open_all(self, names: list[str]) -> list[ChainBackend]:
        return [await self.open(name) for name in names]


class EmbeddedChains(ChainFactory):
    """py-evm chains in this process, one SQLite file each under ``directory``."""

    def __init__(
        self, directory: Path, *, genesis_timestamp: int | None = None, read_only: bool = False
    ) -> None:
        self.directory = Path(directory)
        self.genesis_timestamp = genesis_timestamp
        self.read_only = read_only

    async def open(self, name: str, *, chain_id: int | None = None) -> ChainBackend:
        from .backends.embedded import EmbeddedBackend

        return EmbeddedBackend(
            self.directory,
            chain_name=name,
            chain_id=chain_id,
            genesis_timestamp=self.genesis_timestamp,
            read_only=self.read_only,
        )

    def names(self) -> list[str]:
        """The chains stored in the folder, ``root`` first."""
        found = sorted(
            p.name.removesuffix(CHAIN_SUFFIX) for p in self.directory.glob("*" + CHAIN_SUFFIX)
        )
        return root_first(found)

    def record(self, ledger_directory: Path) -> dict[str, Any]:
        try:
            where = str(self.directory.resolve().relative_to(ledger_directory.resolve()))
        except ValueError:
            where = str(self.directory.resolve())
        return {"backend": "embedded", "chains": where}


class RpcChains(ChainFactory):
    """The nodes of a testnet manifest (``specledger testnet up`` writes one), by name."""

    region_processes = True

    def __init__(self, manifest: Path, *, timeout_s: float = 10.0) -> None:
        self.manifest = Path(manifest)
        self.nodes = {n.name: n for n in load_manifest(self.manifest)}
        self.timeout_s = timeout_s

    async def open(self, name: str, *, chain_id: int | None = None) -> ChainBackend:
        from .backends.rpc import RpcBackend

        self._require([name])
        return await RpcBackend.connect(self.nodes[name].url, timeout_s=self.timeout_s)

    async def open_all(self, names: list[str]) -> list[ChainBackend]:
        import asyncio

        self._require(names)  # before connecting to any: one line naming every missing node
        return list(await asyncio.gather(*(self.open(n) for n in names)))

    def _require(self, names: list[str]) -> None:
        missing = [n for n in names if n not in self.nodes]
        if missing:
            raise ConfigError(
                f"manifest {self.manifest} has no node for {', '.join(missing)}: start a "
                f"testnet for the scenario's region ids (`specledger testnet up --regions "
                f"{','.join(n.removeprefix('region-') for n in names if n != 'root')}`)"
            )

    def record(self, ledger_directory: Path) -> dict[str, Any]:
        return {"backend": "rpc", "manifest": str(self.manifest)}


def chains_from_record(record: dict[str, Any], ledger_directory: Path) -> ChainFactory:
    """The factory a ``ledger.json`` names (see :meth:`ChainFactory.record`)."""
    backend = record.get("backend")
    if backend == "embedded":
        return EmbeddedChains(ledger_directory / record.get("chains", "chains"))
    if backend == "rpc":
        if not record.get("manifest"):
            raise ConfigError(f"{ledger_directory}: an rpc ledger without its testnet manifest")
        return RpcChains(Path(record["manifest"]))
    raise ConfigError(f"{ledger_directory}: unknown backend {backend!r} in its ledger.json")
