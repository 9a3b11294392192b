"""``specledger bench ledger`` and ``bench regions``: the chain and the epoch protocol,
measured (JSON out), every timed figure a spread of repeats (:mod:`.stats`).

- ``ledger``   plain transactions, signing, gas of a settlement, the floor contract
- ``settle``   the whole epoch protocol for one region
- ``regions``  the live runtime with 1, 2 and 4 regions side by side (rpc)
"""

from __future__ import annotations

from .ledger import bench_ledger
from .regions import bench_regions
from .settle import measure_protocol

__all__ = ["bench_ledger", "bench_regions", "measure_protocol"]
