"""Pool files (TOML): the model, the devices, the objective. See examples/edge_pool.toml.

An invalid file fails with one message naming the file and the field, e.g.
``edge_pool.toml: devices[1].memory_gib: expected a number > 0, got -1``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import TrainingConfigError
from .planner import DeviceProfile, Objective
from .shapes import TransformerShape

__all__ = ["PoolFile", "load_pool"]


@dataclass(frozen=True)
class PoolFile:
    shape: TransformerShape
    devices: list[DeviceProfile]
    objective: Objective
    energy_weight: float
    steps: int
    channel_width_hz: float
    spectral_efficiency_bps_per_hz: float


_DEVICE_KEYS = {
    "name",
    "count",
    "flops_per_s",
    "memory_gib",
    "link_mbit_per_s",
    "link_latency_ms",
    "idle_w",
    "active_w",
    "link_w",
}


def _number(path: Path, where: str, table: dict[str, Any], key: str, default: Any = None) -> float:
    value = table.get(key, default)
    if value is None:
        raise TrainingConfigError(f"{path.name}: {where}{key}: missing (expected a number)")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TrainingConfigError(
            f"{path.name}: {where}{key}: expected a number >= 0, got {value!r}"
        )
    return float(value)


def load_pool(path: Path | str) -> PoolFile:
    """Read and validate a pool file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TrainingConfigError(f"{path}: no such pool file") from None
    except tomllib.TOMLDecodeError as exc:
        raise TrainingConfigError(f"{path.name}: not valid TOML: {exc}") from exc
    model = data.get("model", {})
    known = {f.name for f in fields(TransformerShape)}
    if not isinstance(model, dict) or set(model) - known:
        extra = sorted(set(model) - known) if isinstance(model, dict) else model
        raise TrainingConfigError(
            f"{path.name}: model: unknown field(s) {extra}; known: {', '.join(sorted(known))}"
        )
    try:
        shape = TransformerShape(**model)
    except (TypeError, TrainingConfigError) as exc:
        raise TrainingConfigError(f"{path.name}: model: {exc}") from None
    raw = data.get("devices")
    if not isinstance(raw, list) or not raw:
        raise TrainingConfigError(f"{path.name}: devices: expected a non-empty [[devices]] array")
    devices: list[DeviceProfile] = []
    for i, table in enumerate(raw):
        where = f"devices[{i}]."
        if not isinstance(table, dict):
            raise TrainingConfigError(f"{path.name}: devices[{i}]: expected a table")
        if set(table) - _DEVICE_KEYS:
            raise TrainingConfigError(
                f"{path.name}: {where}: unknown field(s) {sorted(set(table) - _DEVICE_KEYS)}"
            )
        name = str(table.get("name", f"device-{i}"))
        count = table.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise TrainingConfigError(
                f"{path.name}: {where}count: expected an integer >= 1, got {count!r}"
            )
        for key in ("flops_per_s", "memory_gib", "link_mbit_per_s"):
            if _number(path, where, table, key) <= 0:
                raise TrainingConfigError(
                    f"{path.name}: {where}{key}: expected a number > 0, got {table[key]!r}"
                )
        try:
            profile = DeviceProfile(
                name=name,
                flops_per_s=_number(path, where, table, "flops_per_s"),
                memory_bytes=int(_number(path, where, table, "memory_gib") * 2**30),
                link_bytes_per_s=_number(path, where, table, "link_mbit_per_s") * 1e6 / 8,
                link_latency_s=_number(path, where, table, "link_latency_ms", 1.0) / 1e3,
                idle_w=_number(path, where, table, "idle_w"),
                active_w=_number(path, where, table, "active_w"),
                link_w=_number(path, where, table, "link_w", 1.0),
            )
        except TrainingConfigError as exc:
            raise TrainingConfigError(f"{path.name}: {where[:-1]}: {exc}") from None
        devices.extend(
            DeviceProfile(**{**profile.__dict__, "name": f"{name}-{k}"}) if count > 1 else profile
            for k in range(count)
        )
    objective = data.get("objective", "energy")
    if objective not in ("energy", "latency", "mixed"):
        raise TrainingConfigError(
            f"{path.name}: objective: expected energy, latency or mixed, got {objective!r}"
        )
    weight = _number(path, "", data, "energy_weight", 0.5)
    if weight > 1:
        raise TrainingConfigError(f"{path.name}: energy_weight: expected 0..1, got {weight}")
    steps = data.get("steps", 1000)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise TrainingConfigError(f"{path.name}: steps: expected an integer >= 1, got {steps!r}")
    market = data.get("market", {})
    return PoolFile(
        shape,
        devices,
        objective,
        weight,
        steps,
        _number(path, "market.", market, "channel_width_hz", 10_000_000),
        _number(path, "market.", market, "spectral_efficiency_bps_per_hz", 4.0),
    )
