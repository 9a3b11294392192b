"""The room for experiments: many runs of a scenario, and what they measure.

- :mod:`~agents.experiments.experiment`: an ``EXPERIMENT.toml`` read into the runs it
  asks for (a grid and zipped lists over scenario fields, times seeds);
- :mod:`~agents.experiments.sweep`: those runs on dask.distributed, each in its own
  run directory, resumable; :mod:`~agents.experiments.tables` and
  :mod:`~agents.experiments.plots` turn them into tables, plots and a page;
- :mod:`~agents.experiments.api`: ``open_run`` and ``open_sweep``, a run or a sweep
  as pandas DataFrames for notebooks;
- :mod:`~agents.experiments.books`, :mod:`~agents.experiments.compare`: each
  region-epoch's frozen book kept, and replayed through every mechanism
  (``specledger compare``); :mod:`~agents.experiments.metrics`: the run-level metrics
  and their 95% intervals.

Nothing here is imported by ``import agents``: pandas, dask and matplotlib load only
when an experiment is read or opened.
"""

from __future__ import annotations

__all__: list[str] = []
