"""Typed binding of the deployed ``RootLedger`` (the tier-0 chain).

The region registry, committee-signed shard checkpoints and their Merkle
verifier, and the votes of cross-region leases, with the root's EIP-712 digests.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_abi import encode
from eth_utils import keccak, to_canonical_address, to_checksum_address

from ..chain import ContractBinding, LedgerClient, Receipt
from ..eip712 import (
    CHECKPOINT_TYPE,
    REGION_TYPE,
    VOTE_TYPE,
    Sig,
    domain_separator,
    quorum_sign,
    struct_hash,
    typed_digest,
)
from ..errors import ConfigError
from ..records import CrossState

__all__ = ["ROOT_DOMAIN", "RootLedger"]

ROOT_DOMAIN = "specledger RootLedger"


class RootLedger:
    """Typed binding of the deployed ``RootLedger`` (the tier-0 chain)."""

    def __init__(self, binding: ContractBinding, chain_id: int) -> None:
        self.binding = binding
        self.address = binding.address
        self.chain_id = chain_id
        self.domain = domain_separator(ROOT_DOMAIN, chain_id, binding.address)

    @classmethod
    async def deploy(
        cls, client: LedgerClient, members: Sequence[str], threshold: int
    ) -> RootLedger:
        if not 1 <= threshold <= len(members):
            raise ConfigError(f"root threshold must be 1..{len(members)}, got {threshold}")
        binding = await client.deploy("RootLedger", list(members), threshold, gas=6_000_000)
        return cls(binding, await client.chain_id())

    def as_client(self, client: LedgerClient) -> RootLedger:
        return RootLedger(client.bind(self.binding.artifact, self.address), self.chain_id)

    def region_digest(
        self,
        region: int,
        shard_chain_id: int,
        market: str,
        members: Sequence[str],
        threshold: int,
        mechanism_id: int,
        config_nonce: int,
    ) -> bytes:
        members_hash = keccak(encode(["address[]"], [[to_canonical_address(m) for m in members]]))
        return typed_digest(
            self.domain,
            struct_hash(
                REGION_TYPE,
                ["uint256", "uint256", "address", "bytes32", *["uint256"] * 3],
                [
                    region,
                    shard_chain_id,
                    market,
                    members_hash,
                    threshold,
                    mechanism_id,
                    config_nonce,
                ],
            ),
        )

    def checkpoint_digest(
        self, region: int, block_number: int, block_hash: bytes, lease_root: bytes
    ) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(
                CHECKPOINT_TYPE,
                ["uint256", "uint256", "bytes32", "bytes32"],
                [region, block_number, block_hash, lease_root],
            ),
        )

    def vote_digest(self, xlease_id: bytes, region: int, commit: bool) -> bytes:
        return typed_digest(
            self.domain,
            struct_hash(VOTE_TYPE, ["bytes32", "uint256", "bool"], [xlease_id, region, commit]),
        )

    async def register_region(
        self,
        region: int,
        shard_chain_id: int,
        market: str,
        members: Sequence[str],
        threshold: int,
        mechanism_id: int,
        root_keys: Sequence[bytes],
    ) -> Receipt:
        market = to_checksum_address(market)
        members = [to_checksum_address(m) for m in members]
        nonce = await self.binding.call("config_nonce")
        digest = self.region_digest(
            region, shard_chain_id, market, members, threshold, mechanism_id, nonce
        )
        return await self.binding.transact(
            "register_region",
            region,
            shard_chain_id,
            market,
            list(members),
            threshold,
            mechanism_id,
            [s.as_tuple() for s in quorum_sign(digest, root_keys)],
            gas=2_000_000,
        )

    async def post_checkpoint(
        self,
        region: int,
        block_number: int,
        block_hash: bytes,
        lease_root: bytes,
        sigs: Sequence[Sig],
    ) -> Receipt:
        return await self.binding.transact(
            "post_checkpoint",
            region,
            block_number,
            block_hash,
            lease_root,
            [s.as_tuple() for s in sigs],
            gas=400_000,
        )

    async def verify_lease(
        self, region: int, index: int, lease_id: bytes, lease_word: int, proof: Sequence[bytes]
    ) -> bool:
        return bool(
            await self.binding.call(
                "verify_lease", region, index, lease_id, lease_word, list(proof)
            )
        )

    async def cross_state(self, xlease_id: bytes) -> CrossState:
        return CrossState(await self.binding.call("cross_state", xlease_id))
