"""``adaptive``: learns from past clearing prices.

It keeps an exponential moving average of the clearing price per unit and bids
a margin above it, never above its value: when the market is cheap it stops
overpaying, when prices rise it follows them up to its value.
"""

from __future__ import annotations

from .base import BiddingStrategy

__all__ = ["Adaptive"]


class Adaptive(BiddingStrategy):
    name = "adaptive"

    def __init__(self, margin: float = 0.25, smoothing: float = 0.5) -> None:
        self.margin = margin
        self.smoothing = smoothing
        self.estimate_wei: float | None = None

    def bid_wei(self, value_wei: int) -> int:
        if self.estimate_wei is None:
            return value_wei  # nothing learnt yet: bid the value
        return max(1, min(value_wei, int(self.estimate_wei * (1 + self.margin))))

    def observe(self, clearing_price_wei: int) -> None:
        if clearing_price_wei <= 0:
            return
        if self.estimate_wei is None:
            self.estimate_wei = float(clearing_price_wei)
        else:
            self.estimate_wei = (
                self.smoothing * clearing_price_wei + (1 - self.smoothing) * self.estimate_wei
            )
