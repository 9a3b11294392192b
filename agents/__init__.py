"""Where the market and the training meet: agents, strategies, scenarios, runs, and the CLI."""

from __future__ import annotations

__all__: list[str] = []
