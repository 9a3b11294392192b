"""The audit itself: read the chains, run every check, and (for a run) keep the index.

:class:`Audit` takes backends already open, so a test or a tool audits any
chains it has; :func:`run_audit` is the command line's entry, opening the chains
of a run directory or a testnet manifest through their factories.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..chain import ChainBackend, EmbeddedChains, RpcChains, root_first
from ..errors import ChainDataError, ConfigError
from .checks import check_checkpoints, check_cross_region, check_rounds
from .code import check_code
from .history import LeaseHistory
from .index import keep_index
from .integrity import embedded_integrity
from .read import RegionChain, find_root_ledger, read_chain, read_regions
from .result import AuditResult, Violation
from .settlements import SettlementAudit

__all__ = ["Audit", "run_audit"]


class Audit:
    """Reads the root and every region chain and checks the invariants."""

    def __init__(
        self,
        root: ChainBackend,
        regions: Sequence[ChainBackend],
        *,
        names: dict[int, str] | None = None,
    ) -> None:
        self.root = root
        self.region_backends = list(regions)
        self.names = names or {}  # a label per region id, for reports
        self.violations: list[Violation] = []
        self.warnings: list[Violation] = []

    async def run(
        self, at_block: int | None = None, rounds_file: Path | None = None
    ) -> AuditResult:
        """Audit as of root block ``at_block`` (default: the heads), with the run's
        ``rounds_file`` to check confirmed metrics against (None: not checked)."""
        found = self.violations
        root_binding = await find_root_ledger(self.root)
        root = await read_chain(self.root, "root", [root_binding], upto_block=at_block)
        upto_ts = root.blocks[root.head].timestamp if at_block is not None else None
        regions = await read_regions(
            root, self.region_backends, upto_ts, self.names, found, self.warnings
        )
        result = AuditResult(
            chains=[r.row() for r in (root, *(g.read for g in regions.values()))],
            regions={r: g.row() for r, g in regions.items()},
        )
        histories: dict[int, LeaseHistory] = {}
        for region in regions.values():
            replay = await self._region(region)
            histories[region.id] = replay.history
            result.leases.extend(replay.history.rows())
            result.settlements.extend(replay.settlements)
            result.payments.extend(replay.escrow.payments)
            result.lease_events.extend(replay.escrow.lease_events)
            result.leases_verified += replay.verified
        shards = {r: g.read for r, g in regions.items()}
        await check_code(self.root, root, root_binding.address, list(regions.values()), found)
        result.checkpoints = check_checkpoints(root, shards, histories, found)
        check_cross_region(root, result.leases, found)
        result.rounds = check_rounds(root, rounds_file, found)
        result.block_hashes = {
            r.name: {n: b.hash for n, b in r.blocks.items()} for r in (root, *shards.values())
        }
        result.violations = found
        result.warnings = self.warnings
        return result

    async def _region(self, region: RegionChain) -> SettlementAudit:
        """Replay one region's settlements (a seam for tests that alter a region)."""
        return await SettlementAudit(region, self.violations, self.warnings).run()


async def run_audit(
    run_dir: Path | None = None,
    manifest: Path | None = None,
    at_block: int | None = None,
    index: Path | None = None,
    *,
    reindex: bool = False,
) -> AuditResult:
    """Audit a run directory or the nodes of a testnet manifest.

    A run directory's chains are where its ``ledger.json`` says: embedded chain
    files, or the nodes of the testnet manifest it records (rpc). Either way its
    ``rounds.jsonl`` is checked against the root's confirmed rounds, and its index
    (``index``, default ``run_dir/audit.sqlite``) is checked and extended, or with
    ``reindex`` rebuilt and its alarms cleared (:func:`~ledger.audit.index.keep_index`);
    ``at_block`` (a past state) leaves the index alone.
    """
    if reindex and at_block is not None:
        raise ConfigError("--reindex rebuilds the index of the heads: not with --at-block")
    backends: list[ChainBackend] = []
    rounds_file: Path | None = None
    try:
        if run_dir is not None:
            # where the run's chains are: only a location; nothing it says is trusted
            record = _ledger_record(run_dir)
            index = index or run_dir / "audit.sqlite"
            rounds_file = run_dir / "rounds.jsonl"
            if record.get("backend") == "rpc" and record.get("manifest"):
                await _open_rpc(Path(record["manifest"]), backends)
            else:
                chains_dir = run_dir / record.get("chains", "chains")
                if not (chains_dir / "root.chain.sqlite").exists():
                    raise ConfigError(
                        f"{run_dir} holds no chains (no {chains_dir}/root.chain.sqlite)"
                    )
                integrity = await _open_embedded(chains_dir, backends)
                if integrity:  # damaged chain data: report it, and trust nothing read from it
                    kept = [f"{index.name} not rebuilt: the chain files do not verify"]
                    return AuditResult(violations=integrity, notes=kept if reindex else [])
        elif manifest is not None:
            await _open_rpc(manifest, backends)
        else:
            raise ConfigError("audit needs a run directory or --manifest testnet.json")
        result = await Audit(backends[0], backends[1:]).run(at_block, rounds_file)
        if index is not None and at_block is None:
            keep_index(index, result, reindex=reindex)
        return result
    finally:
        for backend in backends:
            await backend.close()


async def _open_rpc(manifest: Path, backends: list[ChainBackend]) -> None:
    """Open every node of a testnet manifest (root first) into ``backends``."""
    chains = RpcChains(manifest)
    for name in root_first(list(chains.nodes)):
        backends.append(await chains.open(name))


async def _open_embedded(directory: Path, backends: list[ChainBackend]) -> list[Violation]:
    """Open every chain file in ``directory`` (root first) into ``backends`` and verify
    each; what does not open or verify is returned as ``integrity`` violations."""
    chains = EmbeddedChains(directory, read_only=True)
    found = []
    for name in chains.names():
        try:
            backend = await chains.open(name)
        except (ChainDataError, ConfigError) as exc:
            found.append(Violation("integrity", name, None, None, None, str(exc)))
            continue
        backends.append(backend)
        found.extend(embedded_integrity(backend, name))
    return found


def _ledger_record(run_dir: Path) -> dict[str, Any]:
    """The run's ``ledger.json`` (empty when there is none or it does not parse)."""
    try:
        record = json.loads((run_dir / "ledger.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
