"""A market transaction's calldata decoded by its 4-byte selector, from the market's ABI.

The audit reads what a transaction asked for from its calldata alone, never from the
events the market emitted for it, so every function of the ABI is decodable here.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, get_abi_input_types

from ..chain import ContractBinding

__all__ = ["CallDecoder"]


class CallDecoder:
    """The functions of ``binding``'s ABI by selector."""

    def __init__(self, binding: ContractBinding) -> None:
        self.functions: dict[bytes, tuple[str, list[str]]] = {}
        for abi in binding.artifact.abi:
            if abi.get("type") != "function":
                continue
            types = list(get_abi_input_types(abi))  # type: ignore[arg-type]
            selector = function_signature_to_4byte_selector(f"{abi['name']}({','.join(types)})")
            self.functions[selector] = (abi["name"], types)

    def decode(self, data: bytes) -> tuple[str, tuple[Any, ...]] | None:
        """(function name, arguments), or None for calldata no function of the ABI takes."""
        found = self.functions.get(bytes(data[:4]))
        if found is None:
            return None
        name, types = found
        try:
            return name, tuple(abi_decode(types, bytes(data[4:])))
        except Exception:  # calldata too short or malformed: the contract would revert too
            return None

    def selector(self, name: str) -> bytes:
        return next(s for s, (n, _) in self.functions.items() if n == name)
