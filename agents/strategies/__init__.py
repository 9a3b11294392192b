"""Bidding strategies, one module each behind :class:`BiddingStrategy`.

========= =========================================================
truthful  bid the value
shaded    bid the value less a fixed fraction
adaptive  learn from past clearing prices: bid just above what cleared
========= =========================================================
"""

from __future__ import annotations

from ..errors import ScenarioError
from .adaptive import Adaptive
from .base import BiddingStrategy
from .shaded import Shaded
from .truthful import Truthful

__all__ = ["Adaptive", "BiddingStrategy", "Shaded", "Truthful", "make_strategy"]


def make_strategy(name: str, shade: float = 0.2) -> BiddingStrategy:
    if name == "truthful":
        return Truthful()
    if name == "shaded":
        return Shaded(shade)
    if name == "adaptive":
        return Adaptive()
    raise ScenarioError(f"unknown strategy {name!r}: choose truthful, shaded or adaptive")
