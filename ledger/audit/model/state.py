"""The model's state with an undo journal, its signatures and its committee."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from ...bindings import RegionMarket
from ...eip712 import Sig, recover

__all__ = ["Call", "Expected", "MarketConfig", "ModelState", "Refused", "address_of", "require"]

HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
MAX_SLOTS = 64
ROLE_NONE, ROLE_SATELLITE, ROLE_COORDINATOR = 0, 1, 5
SELLER_ROLES = (1, 2, 3, 4)
STATE_NONE, STATE_ACTIVE, STATE_COMPLETED, STATE_RELINQUISHED = 0, 1, 2, 3
STATE_DEFAULTED, STATE_EXPIRED = 4, 5
STEP_NONE, STEP_COMPLETE, STEP_RELINQUISH, STEP_DEFAULT, STEP_EXPIRE = 0, 2, 3, 4, 5
EPOCH_SETTLING, EPOCH_SEALED, EPOCH_VOID = 1, 2, 3
ZERO32 = bytes(32)
_MISSING = object()

Expected = tuple[str, dict[str, Any]]  # an event's name and its arguments


class Refused(Exception):
    """The committed contract reverts here: ``check`` names the rule, ``reason`` is its
    message, ``lease`` the lease id concerned (0x-hex), if any."""

    def __init__(self, check: str, reason: str, lease: str | None = None) -> None:
        super().__init__(reason)
        self.check, self.reason, self.lease = check, reason, lease


def require(ok: bool, check: str, reason: str, lease: bytes | None = None) -> None:
    if not ok:
        raise Refused(check, reason, "0x" + lease.hex() if lease else None)


@dataclass(frozen=True)
class MarketConfig:
    """The market's settings that no transaction changes (its constructor's)."""

    num_channels: int
    protected_mask: int
    epoch_length_s: int
    heartbeat_interval_s: int
    claim_window_s: int
    min_bond_wei: int
    bond_notice_s: int


@dataclass(frozen=True)
class Call:
    """One transaction to the market: the function, its decoded arguments, who sent it,
    the ether it carried, and its block's timestamp."""

    fn: str
    args: tuple[Any, ...]
    sender: str
    value: int
    timestamp: int


def address_of(word: int, what: str) -> str:
    require(word < 1 << 160, "rule", f"{what} is not an address")  # vyper's convert reverts
    return to_checksum_address(word.to_bytes(20, "big"))


class ModelState:
    """The market's state as the committed contract would hold it; a refused call's
    writes are undone (:meth:`apply`)."""

    def __init__(
        self, market: RegionMarket, config: MarketConfig, members: tuple[str, ...], threshold: int
    ) -> None:
        self.market = market  # the EIP-712 digests, computed here (no chain read)
        self.config = config
        self.maps: dict[str, dict[Any, Any]] = {
            name: {}
            for name in (
                [
                    "role",
                    "free",
                    "bond",
                    "bond_exit_at",
                    "epoch_state",
                    "word",
                    "record",
                    "occupancy",
                    "sold",
                    "var",
                ]
            )
        }
        self._journal: list[tuple[str, Any, Any]] = []
        self._lenient = False
        self._set("var", "members", tuple(members))
        self._set("var", "threshold", threshold)
        self._journal.clear()

    # -- state, with an undo journal ----------------------------------------------------------
    def get(self, table: str, key: Any, default: Any = 0) -> Any:
        return self.maps[table].get(key, default)

    def _set(self, table: str, key: Any, value: Any) -> None:
        self._journal.append((table, key, self.maps[table].get(key, _MISSING)))
        self.maps[table][key] = value

    def _add(self, table: str, key: Any, amount: int) -> int:
        value = self.get(table, key) + amount
        self._set(table, key, value)
        return value

    def apply(self, call: Call) -> list[Expected]:
        """The events the committed contract emits for ``call``; raises :class:`Refused`
        (leaving the state as it was) where it reverts."""
        handler: Callable[[Call, list[Expected]], None] | None = getattr(self, "_" + call.fn, None)
        if handler is None or call.fn.startswith("do_"):
            raise Refused("rule", f"the market has no function {call.fn}")
        self._journal.clear()
        events: list[Expected] = []
        try:
            handler(call, events)
        except Refused:
            for table, key, old in reversed(self._journal):
                if old is _MISSING:
                    self.maps[table].pop(key, None)
                else:
                    self.maps[table][key] = old
            self._follow(handler, call)
            raise
        finally:
            self._journal.clear()
        return events

    def _follow(self, handler: Callable[[Call, list[Expected]], None], call: Call) -> None:
        """Apply a call the chain accepted although the contract refuses it, with every
        check waived, so that the model goes on from the state the chain is in (one
        violation for the call, not one for every later call that depends on it)."""
        self._lenient = True
        try:
            handler(call, [])
        except Exception:
            pass
        finally:
            self._lenient = False

    def need(self, ok: bool, check: str, reason: str, lease: bytes | None = None) -> None:
        """The contract's ``assert ok, reason`` (waived while following the chain)."""
        if not self._lenient:
            require(ok, check, reason, lease)

    @property
    def totals(self) -> dict[str, int]:
        return {
            name: self.get("var", name) for name in ("total_free", "total_locked", "total_bonds")
        }

    # -- signatures ------------------------------------------------------------------------------
    def _recover(self, digest: bytes, raw_sig: Any, check: str = "signature") -> str:
        sig = Sig(*raw_sig)
        self.need(int.from_bytes(sig.s, "big") <= HALF_N, check, "malleable signature")
        try:
            return recover(digest, sig)
        except Exception:
            self.need(False, check, "invalid signature")
            return "0x" + "00" * 20  # following the chain: as ecrecover's zero address

    def _check_quorum(self, digest: bytes, sigs: Any) -> int:
        threshold, members = self.get("var", "threshold"), set(self.get("var", "members"))
        self.need(len(sigs) >= threshold, "quorum", "fewer than threshold committee signatures")
        previous = 0
        for sig in sigs:
            signer = self._recover(digest, sig, "quorum")
            self.need(signer in members, "quorum", "signer is not in the committee")
            self.need(
                int(signer, 16) > previous, "quorum", "committee signers not strictly increasing"
            )
            previous = int(signer, 16)
        return len(sigs)

    def _set_committee(self, members: list[str], threshold: int) -> None:
        self.need(0 < threshold <= len(members), "rule", "threshold must be 1..committee size")
        self.need(len(set(members)) == len(members), "rule", "duplicate committee member")
        self.need(all(int(m, 16) for m in members), "rule", "empty committee member")
        self._set("var", "members", tuple(members))
        self._set("var", "threshold", threshold)

    # -- configuration -------------------------------------------------------------------------
    def _rotate_committee(self, call: Call, events: list[Expected]) -> None:
        members, threshold, sigs = call.args
        nonce = self.get("var", "config_nonce")
        self._check_quorum(self.market.rotation_digest(members, threshold, nonce), sigs)
        self._set_committee(list(members), threshold)
        self._set("var", "config_nonce", nonce + 1)
        events.append(
            (
                "CommitteeRotated",
                {"members": list(members), "threshold": threshold, "config_nonce": nonce + 1},
            )
        )

    def _set_mechanism(self, call: Call, events: list[Expected]) -> None:
        mechanism_id, params_hash, sigs = call.args
        nonce = self.get("var", "config_nonce")
        self._check_quorum(self.market.mechanism_digest(mechanism_id, params_hash, nonce), sigs)
        self._set("var", "config_nonce", nonce + 1)
        events.append(
            (
                "MechanismChanged",
                {
                    "mechanism_id": mechanism_id,
                    "params_hash": params_hash,
                    "config_nonce": nonce + 1,
                },
            )
        )
