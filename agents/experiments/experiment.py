"""An experiment file (``EXPERIMENT.toml``): a base scenario, fields to vary, seeds.

::

    scenario = "../quickstart.toml"   # the base scenario, relative to this file (or absolute)
    seeds = [1, 2, 3]                 # every point runs once per seed (the scenario's seed)
    metrics = ["leases", "welfare_wei"]  # optional: what the sweep plots, one PNG each
    x = "participants.edge_devices"   # optional: the field on the plots' x axis
    [grid]                            # every combination of these
    "regions.0.mechanism" = ["second_price", "double_auction"]
    "participants.edge_devices" = [30, 100]
    [zip]                             # optional: lists walked together (equal lengths)
    "job.rounds" = [2, 4]
    "epochs" = [3, 5]

A key addresses a scenario field with dots, an item of a list by its index
(``regions.0.mechanism``); it must name a field of :data:`agents.scenario.KEYS`, and
a key that names none is refused with the nearest one that does. The points are
every grid combination times every zip position; each point's scenario is the base
file's table with the point's values put in, validated by :mod:`agents.scenario`
before anything runs. A point whose values the scenario refuses (a grid can
combine values that do not fit together) is kept, with the scenario's error, as a
failed run; an experiment none of whose points is valid is refused.

A point is named by a hash of the base scenario's bytes and its values, so a run
directory found again belongs to the same point even after values were added to
the grid, and never to a point of an edited base scenario.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExperimentError, ScenarioError
from ..scenario import KEYS, MAX_INT, scenario_from_dict
from . import _toml

__all__ = ["Experiment", "RunSpec", "load_experiment"]

TOP_KEYS = ("scenario", "seeds", "grid", "zip", "metrics", "x")
MAX_RUNS = 10_000  # points x seeds: more is a typo, not a sweep this project's machines finish
MAX_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a point of the grid and a seed, and its scenario's TOML text."""

    run_id: str  # "<point_id>-seed<seed>": its directory under runs/
    point_id: str
    params: tuple[tuple[str, Any], ...]  # (dotted key, value), in the experiment's order
    seed: int
    scenario_toml: str
    invalid: str = ""  # the scenario's error when this point cannot run; "" when it can


@dataclass(frozen=True)
class Experiment:
    """A read and checked experiment file; :meth:`runs` lists its runs."""

    path: Path
    scenario_path: Path
    base: dict[str, Any]  # the base scenario's TOML table, as read
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]]
    zipped: dict[str, list[Any]]
    metrics: tuple[str, ...]
    x: str | None

    @property
    def swept(self) -> list[str]:
        """The varied fields: the grid's keys, then the zip's."""
        return [*self.grid, *self.zipped]

    @property
    def x_field(self) -> str | None:
        """The field the plots put on their x axis: ``x``, else the first swept one."""
        return self.x or (self.swept[0] if self.swept else None)

    def points(self) -> list[dict[str, Any]]:
        """Every grid combination times every zip position (one empty point if neither)."""
        combos = list(itertools.product(*self.grid.values())) if self.grid else [()]
        length = len(next(iter(self.zipped.values()))) if self.zipped else 1
        points = []
        for combo in combos:
            for i in range(length):
                point = dict(zip(self.grid, combo, strict=True))
                point.update({k: values[i] for k, values in self.zipped.items()})
                points.append(point)
        return points

    def runs(self) -> list[RunSpec]:
        base_sha = hashlib.sha256(_toml.dumps(self.base).encode()).hexdigest()
        runs = []
        for point in self.points():
            blob = json.dumps({"base": base_sha, "params": point}, sort_keys=True)
            point_id = "p" + hashlib.sha256(blob.encode()).hexdigest()[:8]
            raw = copy.deepcopy(self.base)
            for key, value in point.items():
                _put(raw, key.split("."), copy.deepcopy(value))
            invalid = ""
            try:
                scenario_from_dict(raw, self.scenario_path)
            except ScenarioError as exc:
                invalid = str(exc)
            for seed in self.seeds:
                raw["seed"] = seed
                runs.append(
                    RunSpec(
                        run_id=f"{point_id}-seed{seed}",
                        point_id=point_id,
                        params=tuple(point.items()),
                        seed=seed,
                        scenario_toml=_toml.dumps(raw),
                        invalid=invalid,
                    )
                )
        return runs


def _put(table: Any, parts: list[str], value: Any) -> None:
    """Set the field at ``parts`` (checked by :func:`_check_key`) to ``value``, making the
    tables on the way that the base scenario left out."""
    for part in parts[:-1]:
        table = table[int(part)] if isinstance(table, list) else table.setdefault(part, {})
    last = parts[-1]
    if isinstance(table, list):
        table[int(last)] = value
    else:
        table[last] = value


def _valid_keys(base: dict[str, Any]) -> list[str]:
    """Every dotted key the base scenario can be varied at (list items by the indices it
    has, or 0): the candidates of a suggestion."""
    found: list[str] = []

    def walk(schema: str, prefix: str, node: Any) -> None:
        for key in KEYS[schema]:
            sub = f"{schema}.{key}" if schema else key
            dotted = f"{prefix}{key}"
            found.append(dotted)
            child = node.get(key) if isinstance(node, dict) else None
            if sub in KEYS:
                walk(sub, dotted + ".", child or {})
            elif f"{sub}[]" in KEYS:
                items = child if isinstance(child, list) and child else [{}]
                for i, item in enumerate(items):
                    found.append(f"{dotted}.{i}")
                    walk(f"{sub}[]", f"{dotted}.{i}.", item)

    walk("", "", base)
    return found


def _check_key(key: str, base: dict[str, Any], where: str) -> None:
    """Refuse a key that names no scenario field, with the nearest one that does."""
    if key == "seed":
        raise ExperimentError(f"{where}: seed: the seeds are the experiment's seeds = [...]")
    schema: str | None = ""
    node: Any = base
    is_list = False
    for n, part in enumerate(key.split(".")):
        at = ".".join(key.split(".")[: n + 1])
        if is_list:
            length = len(node) if isinstance(node, list) else 0
            if not part.isdigit() or int(part) >= length:
                raise ExperimentError(
                    f"{where}: {key}: {at}: expected an index of the base scenario's "
                    f"{length} item(s) (0..{length - 1})"
                )
            node, is_list = node[int(part)], False
            continue
        if schema is None or part not in KEYS[schema]:
            near = difflib.get_close_matches(key, _valid_keys(base), n=1, cutoff=0.5)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ExperimentError(f"{where}: {key}: names no scenario field{hint}")
        sub = f"{schema}.{part}" if schema else part
        child = node.get(part) if isinstance(node, dict) else None
        if sub in KEYS:
            schema, node = sub, child if isinstance(child, dict) else {}
        elif f"{sub}[]" in KEYS:
            schema, node, is_list = f"{sub}[]", child, True
        else:
            schema, node = None, None  # a leaf: no field below it


def _values(name: str, table: Any, where: str, base: dict[str, Any]) -> dict[str, list[Any]]:
    """``[grid]`` or ``[zip]``: dotted key -> its non-empty list of values. Keys written
    unquoted (``regions.0.mechanism = [...]``) read as nested tables; they are joined back."""
    if not isinstance(table, dict):
        raise ExperimentError(f"{where}: {name}: expected a table of lists, got {table!r:.60}")
    flat: dict[str, Any] = {}

    def join(prefix: str, node: dict[str, Any]) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                join(f"{prefix}{k}.", v)
            else:
                flat[f"{prefix}{k}"] = v

    join("", table)
    for key, values in flat.items():
        _check_key(key, base, f"{where}: [{name}]")
        if not isinstance(values, list) or not values:
            raise ExperimentError(
                f"{where}: [{name}] {key}: expected a non-empty list of values, got {values!r:.60}"
            )
    return flat


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        raw = path.read_bytes()[: MAX_FILE_BYTES + 1]
    except FileNotFoundError:
        raise ExperimentError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise ExperimentError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ExperimentError(f"{path.name}: expected a file of at most {MAX_FILE_BYTES} bytes")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{path.name}: not valid TOML: {exc}") from None


def _seeds(data: dict[str, Any], where: str) -> tuple[int, ...]:
    seeds = data.get("seeds", [0])
    ok = isinstance(seeds, list) and seeds and len(set(map(repr, seeds))) == len(seeds)
    if not ok or not all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_INT for s in seeds
    ):
        raise ExperimentError(
            f"{where}: seeds: expected a non-empty list of distinct integers >= 0, "
            f"got {seeds!r:.60}"
        )
    return tuple(seeds)


def load_experiment(path: Path | str) -> Experiment:
    """Read and check an experiment file; every refusal is one line naming file and key."""
    path = Path(path)
    data = _read_toml(path, "experiment file")
    where = path.name
    for key in data:
        if key not in TOP_KEYS:
            near = difflib.get_close_matches(key, TOP_KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ExperimentError(
                f"{where}: {key}: unknown key{hint}; expected one of {', '.join(TOP_KEYS)}"
            )
    scenario = data.get("scenario")
    if not isinstance(scenario, str) or not scenario:
        raise ExperimentError(
            f"{where}: scenario: expected the base scenario's path (relative to this file), "
            f"got {scenario!r:.60}"
        )
    scenario_path = (path.parent / scenario).resolve()
    base = _read_toml(scenario_path, f"base scenario (named by {where}: scenario)")
    grid = _values("grid", data.get("grid", {}), where, base)
    zipped = _values("zip", data.get("zip", {}), where, base)
    if both := sorted(set(grid) & set(zipped)):
        raise ExperimentError(f"{where}: {both[0]}: in both [grid] and [zip]: keep it in one")
    if len({len(v) for v in zipped.values()}) > 1:
        lengths = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        raise ExperimentError(f"{where}: [zip]: expected lists of one length, got {lengths}")
    metrics = data.get("metrics", [])
    if not isinstance(metrics, list) or not all(isinstance(m, str) and m for m in metrics):
        raise ExperimentError(
            f"{where}: metrics: expected a list of column names, got {metrics!r:.60}"
        )
    x = data.get("x")
    if x is not None and x not in [*grid, *zipped]:
        raise ExperimentError(
            f"{where}: x: expected one of the swept fields ({', '.join([*grid, *zipped])}), "
            f"got {x!r:.60}"
        )
    experiment = Experiment(
        path=path,
        scenario_path=scenario_path,
        base=base,
        seeds=_seeds(data, where),
        grid=grid,
        zipped=zipped,
        metrics=tuple(metrics),
        x=x,
    )
    size = len(experiment.seeds) * len(experiment.points())
    if size > MAX_RUNS:
        raise ExperimentError(f"{where}: expected at most {MAX_RUNS} runs in all, got {size}")
    runs = experiment.runs()
    if all(run.invalid for run in runs):
        raise ExperimentError(f"{where}: no point is a valid scenario: {runs[0].invalid}")
    return experiment
