"""How many intra-op threads training uses: chosen on purpose, not inherited.

torch's default is one intra-op thread per core (2 on this project's machines).
On the small models that is a bad trade. Measured on a 2-core machine, interleaved
rounds of the quickstart's job (sensor task, small encoder, 78k parameters, 8
devices a round), two threads against one, per round (medians of 5):

- quiet machine: 1.7x the CPU seconds for an 11% faster wall clock;
- other work on the machine (load ~2.8): 8.0x the CPU, 7.3x the wall;
- one core kept busy besides (load 2.4-4): 14x the CPU, 13x the wall.

(Probably OpenMP's threads waiting on each other at every small operation: with a
core taken, each wait costs a scheduling slice.) The real all-MiniLM-L6-v2 (22.7M parameters)
gains from a second thread when the machine is quiet (its fastest round 1.6x
faster than one thread's median), though under load it loses too (3x slower); so
large models keep torch's default, and a busy machine sets ``threads = 1``.

So ``threads = "auto"`` means one thread below :data:`SMALL_MODEL_PARAMETERS`
parameters and torch's default at or above it; an integer is used as given.

``torch.set_num_threads`` is process-global: :func:`apply_threads` changes the
thread count of everything torch runs in this process afterwards (another
trainer, a benchmark), and nothing restores it. The last trainer built sets it.
"""

from __future__ import annotations

from typing import Literal

import torch

from .config import valid_threads
from .errors import TrainingConfigError

__all__ = [
    "SMALL_MODEL_PARAMETERS",
    "TORCH_DEFAULT_THREADS",
    "Threads",
    "apply_threads",
    "choose_threads",
]

Threads = int | Literal["auto"]

#: below this many parameters (encoder, adapters and device modules together) a model
#: trains on one thread under "auto": the small encoder has 78k, the real MiniLM 22.7M,
#: the bench's random encoder of MiniLM's dimensions 10.9M
SMALL_MODEL_PARAMETERS = 1_000_000

#: torch's own choice for this process (OMP_NUM_THREADS, else one per core), as it
#: stood when this module was first imported
TORCH_DEFAULT_THREADS = torch.get_num_threads()


def choose_threads(parameters: int, threads: Threads = "auto") -> int:
    """The intra-op thread count for a model of ``parameters`` parameters: a configured
    count as given; under "auto", 1 below SMALL_MODEL_PARAMETERS, else torch's default."""
    if not valid_threads(threads):
        raise TrainingConfigError(f'threads = {threads!r}: expected "auto" or an integer >= 1')
    if threads != "auto":
        return int(threads)
    return 1 if parameters < SMALL_MODEL_PARAMETERS else TORCH_DEFAULT_THREADS


def apply_threads(parameters: int, threads: Threads = "auto") -> int:
    """Set this process's intra-op thread count for a model of ``parameters`` parameters
    (:func:`choose_threads`) and return it. Process-global; nothing restores it."""
    chosen = choose_threads(parameters, threads)
    torch.set_num_threads(chosen)
    return chosen
