"""``truthful``: bid exactly the value (dominant in second-price and McAfee auctions)."""

from __future__ import annotations

from .base import BiddingStrategy

__all__ = ["Truthful"]


class Truthful(BiddingStrategy):
    name = "truthful"

    def bid_wei(self, value_wei: int) -> int:
        return value_wei
