"""Where the market and the training meet: agents, strategies, scenarios, runs, and the CLI.

``open_run`` and ``open_sweep`` (:mod:`agents.experiments.api`) are loaded on first
use, so ``import agents`` stays light (no pandas, no chain library, no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .experiments.api import open_run, open_sweep

__all__ = ["open_run", "open_sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from .experiments import api

        return getattr(api, name)
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
