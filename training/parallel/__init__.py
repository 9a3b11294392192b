"""Collaborative edge training: a pool of trusted edge devices trains one model.

- :mod:`training.parallel.shapes`: the transformer and the step, as numbers;
- :mod:`training.parallel.planner`: device profiles; per mode (data, sequence, tensor,
  pipeline) the latency, memory, bytes and energy of a step; the best plan for an
  objective, and why the others lose;
- :mod:`training.parallel.model`, :mod:`training.parallel.execute`: the same model run for
  real in several torch.distributed (gloo) processes, checked against one process;
- :mod:`training.parallel.lease`: what a plan asks of the market (devices, bandwidth);
- :mod:`training.parallel.pool`: pool files (TOML);
- :mod:`training.parallel.bench`: ``specledger bench parallel``.
"""

from __future__ import annotations

from .lease import PoolLease, lease_request
from .planner import DeviceProfile, Estimate, Objective, Plan, PoolCannotFit, estimate, plan
from .shapes import MODES, Mode, TransformerShape

__all__ = [
    "MODES",
    "DeviceProfile",
    "Estimate",
    "Mode",
    "Objective",
    "Plan",
    "PoolCannotFit",
    "PoolLease",
    "TransformerShape",
    "estimate",
    "lease_request",
    "plan",
]
