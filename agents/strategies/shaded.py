"""``shaded``: bid the value less a fixed fraction (pays less when it wins, wins less)."""

from __future__ import annotations

from ..errors import ScenarioError
from .base import BiddingStrategy

__all__ = ["Shaded"]


class Shaded(BiddingStrategy):
    name = "shaded"

    def __init__(self, shade: float) -> None:
        if not 0 <= shade < 1:
            raise ScenarioError(f"shade must be in [0, 1), got {shade}")
        self.shade = shade

    def bid_wei(self, value_wei: int) -> int:
        return max(1, int(value_wei * (1 - self.shade)))
