"""Participants and escrow: RegionMarket.vy's register, deposit, join, withdraw and bonds."""

from __future__ import annotations

from .state import (
    ROLE_COORDINATOR,
    ROLE_NONE,
    ROLE_SATELLITE,
    SELLER_ROLES,
    Call,
    Expected,
    ModelState,
    address_of,
)


class EscrowRules(ModelState):
    """Who may join, fund, bond and withdraw, and what each moves."""

    def _do_register(self, who: str, role: int, events: list[Expected]) -> None:
        self.need(ROLE_SATELLITE <= role <= ROLE_COORDINATOR, "rule", "unknown role")
        self.need(self.get("role", who) == ROLE_NONE, "rule", "already registered")
        self._set("role", who, role)
        events.append(("Registered", {"who": who, "role": role}))

    def _do_deposit(self, who: str, amount: int, events: list[Expected]) -> None:
        self.need(self.get("role", who) != ROLE_NONE, "rule", "register before depositing")
        self.need(amount > 0, "rule", "deposit must be positive")
        free = self._add("free", who, amount)
        self._add("var", "total_free", amount)
        events.append(("Deposited", {"who": who, "amount_wei": amount, "free_wei": free}))

    def _do_post_bond(self, who: str, amount: int, events: list[Expected]) -> None:
        self.need(self.get("role", who) in SELLER_ROLES, "rule", "only sellers post bonds")
        self.need(amount > 0, "rule", "bond must be positive")
        self.need(self.get("bond_exit_at", who) == 0, "rule", "bond exit pending")
        bond = self._add("bond", who, amount)
        self._add("var", "total_bonds", amount)
        events.append(("BondPosted", {"seller": who, "amount_wei": amount, "bond_wei": bond}))

    def _register(self, call: Call, events: list[Expected]) -> None:
        self._do_register(call.sender, call.args[0], events)

    def _deposit(self, call: Call, events: list[Expected]) -> None:
        self._do_deposit(call.sender, call.value, events)

    def _post_bond(self, call: Call, events: list[Expected]) -> None:
        self._do_post_bond(call.sender, call.value, events)

    def _join(self, call: Call, events: list[Expected]) -> None:
        paid = 0
        for raw_who, role, deposit, bond, sig in call.args[0]:
            who = address_of(raw_who, "a joiner")
            if role != ROLE_NONE:
                signer = self._recover(self.market.registration_digest(who, role), sig)
                self.need(signer == who, "signature", "registration not signed by its participant")
                self._do_register(who, role, events)
            if deposit > 0:
                self._do_deposit(who, deposit, events)
            if bond > 0:
                self._do_post_bond(who, bond, events)
            paid += deposit + bond
        self.need(paid == call.value, "rule", "value sent is not the sum of the deposits and bonds")

    def _withdraw(self, call: Call, events: list[Expected]) -> None:
        (amount,) = call.args
        self.need(amount > 0, "rule", "withdrawal must be positive")
        self.need(
            self.get("free", call.sender) >= amount, "rule", "withdrawal exceeds free balance"
        )
        free = self._add("free", call.sender, -amount)
        self._add("var", "total_free", -amount)
        events.append(("Withdrawn", {"who": call.sender, "amount_wei": amount, "free_wei": free}))

    def _request_bond_exit(self, call: Call, events: list[Expected]) -> None:
        who = call.sender
        self.need(self.get("bond", who) > 0, "rule", "no bond")
        self.need(self.get("bond_exit_at", who) == 0, "rule", "bond exit pending")
        at = call.timestamp + self.config.bond_notice_s
        self._set("bond_exit_at", who, at)
        events.append(("BondExitRequested", {"seller": who, "withdrawable_at": at}))

    def _withdraw_bond(self, call: Call, events: list[Expected]) -> None:
        who = call.sender
        at = self.get("bond_exit_at", who)
        self.need(at != 0, "rule", "request_bond_exit first")
        self.need(call.timestamp >= at, "rule", "bond notice period not over")
        amount = self.get("bond", who)
        self._set("bond", who, 0)
        self._set("bond_exit_at", who, 0)
        self._add("var", "total_bonds", -amount)
        events.append(("BondWithdrawn", {"seller": who, "amount_wei": amount}))
