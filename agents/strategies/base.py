"""The bidding strategy interface: a price for a value, and what the market said."""

from __future__ import annotations

from abc import ABC, abstractmethod

__all__ = ["BiddingStrategy"]


class BiddingStrategy(ABC):
    """Turns a bidder's value for one unit into the maximum price it bids."""

    name: str = ""

    @abstractmethod
    def bid_wei(self, value_wei: int) -> int:
        """The maximum price to bid for a unit worth ``value_wei`` to the bidder."""

    def observe(self, clearing_price_wei: int) -> None:  # noqa: B027 - optional hook
        """Learn from an epoch's clearing price (per unit); stateless strategies ignore it."""
