"""Follow a chain block by block and keep the decoded events of chosen contracts."""

from __future__ import annotations

from .client import ContractBinding, LedgerClient
from .events import Event, LogDecoder, decode_logs

__all__ = ["LogIndex"]


class LogIndex:
    """Follows a chain block by block and keeps the decoded events of chosen contracts.

    Each :meth:`sync` reads only the blocks produced since the last one and the
    receipts of their transactions, so indexing costs grow with new blocks,
    not with the length of the chain.
    """

    def __init__(self, client: LedgerClient, start_block: int = 0) -> None:
        self.client = client
        self.next_block = start_block
        self.events: list[Event] = []
        self._decoders: dict[str, LogDecoder] = {}

    def watch(self, binding: ContractBinding) -> None:
        """Index the events of this contract from now on."""
        self._decoders[binding.address] = binding

    async def sync(self) -> int:
        """Index every block up to the current head; returns how many new events."""
        w3 = self.client.web3
        head = int(await self.client._with_retries("eth_blockNumber", lambda: w3.eth.block_number))
        added = 0
        while self.next_block <= head:
            number = self.next_block
            receipts = await self.client._with_retries(
                "eth_getBlockReceipts",
                lambda: self.client.backend.block_receipts(number),  # noqa: B023
            )
            if receipts is not None:  # one request for the whole block, no formatters
                for plain in receipts:
                    new = decode_logs(plain["logs"], self._decoders)
                    self.events.extend(new)
                    added += len(new)
                self.next_block = number + 1
                continue
            block = await self.client._with_retries(
                "eth_getBlockByNumber",
                lambda: w3.eth.get_block(number),  # noqa: B023 - awaited within the iteration
            )
            for tx_hash in block["transactions"]:
                receipt = await self.client._with_retries(
                    "eth_getTransactionReceipt",
                    lambda: w3.eth.get_transaction_receipt(tx_hash),  # type: ignore[arg-type]  # noqa: B023
                )
                new = decode_logs(list(receipt["logs"]), self._decoders)
                self.events.extend(new)
                added += len(new)
            self.next_block = number + 1
        return added

    def of(self, name: str) -> list[Event]:
        """The indexed events called ``name``, in chain order."""
        return [ev for ev in self.events if ev.name == name]
