"""``specledger bench ledger``: the chain and the epoch protocol, measured (JSON out).

- ``ledger``  plain transactions, signing, gas of a settlement, the floor contract
- ``settle``  the whole epoch protocol for one region, and regions side by side
"""

from __future__ import annotations

from .ledger import bench_ledger
from .settle import measure_protocol, regions_scaling

__all__ = ["bench_ledger", "measure_protocol", "regions_scaling"]
