"""Mined transactions and their events: receipts, and logs decoded word by word.

Events whose fields are all one-word values are read by slicing (web3's
``process_log`` took about half a millisecond a log); a test checks the result
against web3's own decoding. Nothing here talks to a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from eth_utils import to_checksum_address

from ..addresses import checksum_address

__all__ = ["Event", "LogDecoder", "NotWords", "Receipt", "decode_logs", "receipt_of", "words"]


@dataclass(frozen=True)
class Event:
    """One decoded log."""

    name: str
    address: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Receipt:
    """A mined transaction: its status, gas and the events we could decode."""

    tx_hash: str
    block_number: int
    gas_used: int
    status: int
    contract_address: str | None = None
    events: list[Event] = field(default_factory=list)

    def event(self, name: str) -> Event:
        """The first event called ``name``; KeyError if there is none."""
        for ev in self.events:
            if ev.name == name:
                return ev
        raise KeyError(f"transaction {self.tx_hash} emitted no {name} event")


class NotWords(Exception):
    """An event field that is not a plain one-word value: decode with eth_abi."""


_ZERO12 = b"\0" * 12
_FALSE, _TRUE = b"\0" * 32, b"\0" * 31 + b"\1"


def words(fields: Sequence[tuple[str, str]], data: bytes) -> list[Any]:
    """One-word ABI values as eth_abi decodes them (addresses as lowercase hex)."""
    if len(data) != 32 * len(fields):
        raise NotWords
    out: list[Any] = []
    for i, (_, kind) in enumerate(fields):
        word = data[32 * i : 32 * i + 32]
        if kind == "uint256":
            out.append(int.from_bytes(word, "big"))
        elif kind == "bytes32":
            out.append(word)
        elif kind == "address" and word[:12] == _ZERO12:
            out.append("0x" + word[12:].hex())
        elif kind == "bool" and word in (_FALSE, _TRUE):
            out.append(word == _TRUE)
        else:
            raise NotWords
    return out


class LogDecoder(Protocol):
    """What decodes the logs of one contract (a contract binding)."""

    def decode_log(self, log: Any) -> Event | None: ...


def decode_logs(logs: list[Any], decoders: dict[str, LogDecoder]) -> list[Event]:
    events = []
    for log in logs:
        binding = decoders.get(checksum_address(log["address"]))
        if binding is not None and (event := binding.decode_log(log)) is not None:
            events.append(event)
    return events


def receipt_of(tx_hash: str, raw: Any) -> tuple[Receipt, list[Any]]:
    """A receipt (plain, or web3's) as a :class:`Receipt` and its raw logs."""
    address = raw.get("contractAddress")
    return Receipt(
        tx_hash=tx_hash,
        block_number=int(raw["blockNumber"]),
        gas_used=int(raw["gasUsed"]),
        status=int(raw["status"]),
        contract_address=to_checksum_address(address) if address else None,
    ), list(raw["logs"])
