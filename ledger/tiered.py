"""Bring up, reopen and run a tiered ledger: a root chain and one chain per region.

On ``embedded`` every chain is a persisted file under ``<dir>/chains/``; on
``rpc`` the chains are the nodes of a ``testnet.json`` manifest (root first).
``<dir>/ledger.json`` records what was deployed where, so :meth:`TieredLedger.open`
brings the same ledger back — in this process or another one.

The chains come from a :class:`~ledger.chain.ChainFactory` passed in
(:class:`~ledger.chain.EmbeddedChains` by default, or
:class:`~ledger.chain.RpcChains`). On ``rpc`` each region's committee and
settlement transaction run in a process of their own (:mod:`ledger.region.worker`);
a script driving such a ledger needs multiprocessing's ``if __name__ ==
"__main__":`` guard.

Keys: the deployer/sequencer account is the first funded development account;
committee keys are derived from the ledger's seed (``derive_key``), so a run
can be reproduced and audited. They are development keys, never for real funds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_utils import keccak

from .bindings import MAX_JOINS, MAX_STEPS, RegionMarket, RootLedger
from .chain import (
    ChainBackend,
    ChainFactory,
    EmbeddedChains,
    LedgerClient,
    chains_from_record,
    dev_keys,
)
from .config import RegionConfig
from .eip712 import quorum_sign
from .errors import ConfigError, LedgerError
from .records import Joiner
from .region import (
    EpochOutcome,
    RegionSequencer,
    RegionWorker,
    Validator,
    recover,
    settle_epoch,
)

__all__ = ["RegionRuntime", "TieredLedger", "derive_key"]

LEDGER_FILE = "ledger.json"
ROOT_COMMITTEE = 3
ROOT_THRESHOLD = 2


def derive_key(seed: int, label: str) -> bytes:
    """A deterministic development private key for ``label`` under ``seed``."""
    return keccak(text=f"specledger:{seed}:{label}")


@dataclass
class RegionRuntime:
    """One region: its chain, market, sequencer and committee."""

    config: RegionConfig
    backend: ChainBackend
    client: LedgerClient
    market: RegionMarket
    sequencer: RegionSequencer
    validators: list[Validator]
    chain_id: int
    outcomes: list[EpochOutcome] = field(default_factory=list)

    async def join(self, joiners: Sequence[Joiner]) -> int:
        """Register, fund and bond ``joiners`` in batches of MAX_JOINS, paid by the
        ledger's operator (its deployer); returns the transactions sent."""
        for i in range(0, len(joiners), MAX_JOINS):
            await self.market.join(joiners[i : i + MAX_JOINS])
        return -(-len(joiners) // MAX_JOINS)

    async def flush_steps(self) -> int:
        """Send the lifecycle steps no settlement will carry (the run's end) in
        ``lifecycle`` batches; returns how many transactions that took."""
        sent, book = 0, self.sequencer.steps
        await self.sequencer.sync()
        while steps := book.due(self.sequencer.now, MAX_STEPS):
            quorum = [v.key for v in self.validators[: self.config.threshold]]
            await self.market.apply_attested(steps, quorum)
            book.landed(steps)
            await self.sequencer.sync()
            sent += 1
        return sent


class TieredLedger:
    """The root chain plus every region, brought up or reopened together."""

    def __init__(
        self,
        directory: Path,
        chains: ChainFactory,
        seed: int,
        root_backend: ChainBackend,
        root: RootLedger,
        regions: dict[int, RegionRuntime],
        region_processes: bool = False,
    ) -> None:
        self.directory = directory
        self.chains = chains
        self.seed = seed
        self.root_backend = root_backend
        self.root = root
        self.regions = regions
        self.root_keys = [derive_key(seed, f"root-committee-{i}") for i in range(ROOT_COMMITTEE)]
        # rpc: each region's committee and settlement run in a process of their own
        self.region_processes = region_processes
        self.workers: dict[int, RegionWorker] = {}

    # -- bring-up -------------------------------------------------------------------------------
    @classmethod
    async def create(
        cls,
        directory: Path,
        configs: Sequence[RegionConfig],
        *,
        chains: ChainFactory | None = None,
        seed: int = 0,
        region_processes: bool | None = None,
    ) -> TieredLedger:
        """Bring up the root and the regions, deploy, register; write ``ledger.json``.

        ``chains`` (default: embedded chains under ``directory/chains``) opens them;
        ``region_processes`` (default: the factory's, on for rpc) settles each region in
        its own process."""
        if (directory / LEDGER_FILE).exists():
            raise ConfigError(f"{directory} already holds a ledger: open it, or choose another")
        if len({c.region_id for c in configs}) != len(configs):
            raise ConfigError("region ids must be distinct")
        directory.mkdir(parents=True, exist_ok=True)
        chains = chains if chains is not None else EmbeddedChains(directory / "chains")
        names = ["root"] + [f"region-{c.region_id}" for c in configs]
        backends = await chains.open_all(names)
        deployer = dev_keys()[0]
        root_client = LedgerClient(backends[0], deployer)
        root_keys = [derive_key(seed, f"root-committee-{i}") for i in range(ROOT_COMMITTEE)]
        root = await RootLedger.deploy(
            root_client, [Account.from_key(k).address for k in root_keys], ROOT_THRESHOLD
        )
        regions: dict[int, RegionRuntime] = {}
        record: dict[str, Any] = {
            **chains.record(directory),
            "seed": seed,
            "root": {"address": root.address, "chain_id": await root_client.chain_id()},
            "regions": [],
        }
        for config, chain in zip(configs, backends[1:], strict=True):
            runtime = await _deploy_region(config, chain, seed)
            await root.register_region(
                config.region_id,
                runtime.chain_id,
                runtime.market.address,
                [v.address for v in runtime.validators],
                config.threshold,
                config.mechanism_id,
                root_keys[:ROOT_THRESHOLD],
            )
            regions[config.region_id] = runtime
            record["regions"].append(
                {
                    "spec": asdict(config),
                    "address": runtime.market.address,
                    "chain_id": runtime.chain_id,
                }
            )
        tmp = directory / (LEDGER_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(directory / LEDGER_FILE)
        processes = chains.region_processes if region_processes is None else region_processes
        return cls(directory, chains, seed, backends[0], root, regions, processes)

    @classmethod
    async def open(
        cls,
        directory: Path,
        *,
        chains: ChainFactory | None = None,
        region_processes: bool | None = None,
    ) -> TieredLedger:
        """Reopen a ledger written by :meth:`create` (chains, contracts, committees);
        ``chains`` defaults to the ones its ``ledger.json`` records."""
        path = directory / LEDGER_FILE
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no ledger at {directory} (missing {LEDGER_FILE})") from None
        except ValueError as exc:
            raise ConfigError(f"{path} is malformed: {exc}") from exc
        configs = [RegionConfig.from_json(r["spec"]) for r in record["regions"]]
        names = ["root"] + [f"region-{c.region_id}" for c in configs]
        chains = chains if chains is not None else chains_from_record(record, directory)
        backends = await chains.open_all(names)
        seed = int(record["seed"])
        root_client = LedgerClient(backends[0], dev_keys()[0])
        root = RootLedger(
            root_client.bind("RootLedger", record["root"]["address"]), await root_client.chain_id()
        )
        regions = {}
        for config, chain, entry in zip(configs, backends[1:], record["regions"], strict=True):
            client = LedgerClient(chain, dev_keys()[0])
            chain_id = await client.chain_id()
            market = RegionMarket(
                client.bind("RegionMarket", entry["address"]), config.region_id, chain_id
            )
            regions[config.region_id] = RegionRuntime(
                config,
                chain,
                client,
                market,
                RegionSequencer(market, config),
                _committee(config, seed),
                chain_id,
            )
        processes = chains.region_processes if region_processes is None else region_processes
        return cls(directory, chains, seed, backends[0], root, regions, processes)

    async def close(self) -> None:
        workers, self.workers = list(self.workers.values()), {}
        for worker in workers:
            await asyncio.to_thread(worker.close)
        for runtime in self.regions.values():
            await runtime.backend.close()
        await self.root_backend.close()

    # -- the epoch protocol -----------------------------------------------------------------------
    async def settle_region(
        self, region: int, timeout_s: float = 60.0, weights: dict[str, int] | None = None
    ) -> EpochOutcome:
        """Close the region's book, let its committee attest, settle; never raises for a
        region that is down — the outcome says what went wrong."""
        rt = self.regions[region]
        frozen = rt.sequencer.close(weights=weights)
        try:
            async with asyncio.timeout(timeout_s):  # not wait_for: it can lose a Ctrl-C
                if self.region_processes:
                    outcome = await (await self.worker(region)).settle(frozen)
                else:
                    outcome = await settle_epoch(
                        rt.market, frozen, rt.validators, rt.config.threshold
                    )
        except (LedgerError, TimeoutError, OSError) as exc:
            outcome = EpochOutcome(
                region, frozen.epoch, settled=False, reason=f"{type(exc).__name__}: {exc}"
            )
            if region in self.workers:  # its answer is late or lost: it must not land later
                await asyncio.to_thread(self.workers.pop(region).kill)
        if not outcome.settled:  # the answer may be lost while the settlement landed
            outcome = await recover(rt.sequencer, frozen, outcome, min(timeout_s, 10.0))
        if outcome.settled:
            rt.sequencer.apply(outcome.leases)
            rt.sequencer.steps.landed(frozen.steps)
        rt.outcomes.append(outcome)
        return outcome

    async def flush_steps(self, skip: frozenset[int] = frozenset()) -> int:
        """Send the pending lifecycle steps of every region but those in ``skip``
        (:meth:`RegionRuntime.flush_steps`); returns the transactions sent."""
        return sum([await rt.flush_steps() for r, rt in self.regions.items() if r not in skip])

    async def worker(self, region: int) -> RegionWorker:
        """The region's settlement process (rpc), started on first use."""
        if region not in self.workers:
            rt = self.regions[region]
            self.workers[region] = await RegionWorker.start(
                rt.client,
                rt.market,
                [v.key for v in rt.validators],
                rt.config.threshold,
                derive_key(self.seed, f"region-{region}-submitter"),
            )
        return self.workers[region]

    async def settle_all(
        self, timeout_s: float = 60.0, checkpoint_every: int = 0, skip: frozenset[int] = frozenset()
    ) -> dict[int, EpochOutcome]:
        """Settle every region concurrently; a stalled region never stalls the others.

        With ``checkpoint_every = C > 0``, a region that has settled a multiple of C
        epochs also posts a checkpoint to the root. Regions in ``skip`` are down for
        this epoch (an outage): their books are dropped and the outcome says so.
        """

        async def one(region: int) -> EpochOutcome:
            rt = self.regions[region]
            if region in skip:
                epoch = rt.sequencer.epoch
                if epoch is not None:
                    rt.sequencer.close()  # the book is lost with the region
                outcome = EpochOutcome(
                    region,
                    -1 if epoch is None else epoch,
                    settled=False,
                    reason="region is down (outage)",
                )
                rt.outcomes.append(outcome)
                return outcome
            outcome = await self.settle_region(region, timeout_s)
            settled = sum(o.settled for o in rt.outcomes)
            if outcome.settled and checkpoint_every > 0 and settled % checkpoint_every == 0:
                try:
                    await self.checkpoint(region)
                except (LedgerError, OSError, TimeoutError) as exc:  # a slow root or region
                    # must not undo a settlement
                    outcome.reason = f"checkpoint failed: {exc}"
            return outcome

        results = await asyncio.gather(*(one(r) for r in self.regions))
        return dict(zip(self.regions, results, strict=True))

    # -- checkpoints -----------------------------------------------------------------------------
    async def checkpoint(self, region: int) -> int:
        """The region committee signs (block, hash, lease-state root); it goes to the root.
        Returns the checkpoint's index on the root."""
        rt = self.regions[region]
        await rt.sequencer.sync()
        head = await rt.backend.web3.eth.get_block("latest")
        number, block_hash = int(head["number"]), bytes(head["hash"])
        lease_root = rt.sequencer.lease_tree().root
        digest = self.root.checkpoint_digest(region, number, block_hash, lease_root)
        sigs = quorum_sign(digest, [v.key for v in rt.validators[: rt.config.threshold]])
        receipt = await self.root.post_checkpoint(region, number, block_hash, lease_root, sigs)
        return int(receipt.event("CheckpointPosted").args["index"])

    async def prove(self, region: int, lease_id: bytes, index: int | None = None) -> bool:
        """Verify a lease's current state against a checkpoint with the root's verifier."""
        rt = self.regions[region]
        if index is None:
            index = int(await self.root.binding.call("checkpoint_count", region)) - 1
        tree = rt.sequencer.lease_tree()
        return await self.root.verify_lease(
            region, index, lease_id, rt.sequencer.lease_words[lease_id], tree.proof(lease_id)
        )


def _committee(config: RegionConfig, seed: int) -> list[Validator]:
    return [
        Validator(derive_key(seed, f"region-{config.region_id}-validator-{i}"))
        for i in range(config.committee_size)
    ]


async def _deploy_region(config: RegionConfig, chain: ChainBackend, seed: int) -> RegionRuntime:
    validators = _committee(config, seed)
    client = LedgerClient(chain, dev_keys()[0])
    market = await RegionMarket.deploy(client, config, [v.address for v in validators])
    return RegionRuntime(
        config,
        chain,
        client,
        market,
        RegionSequencer(market, config),
        validators,
        await client.chain_id(),
    )
