"""Pool files (TOML): the model, the devices, the objective. See examples/edge_pool.toml.

A device names a class from :mod:`training.parallel.devices` (``class =
"jetson-orin-nx-16gb"``) and a radio link (``link = "wifi"``, the default; ``"lte"``,
``"3g"``), which fill in its figures with their sources; any figure given in the file
overrides the class's, and its source is then the file. Without a class, ``flops_per_s``,
``memory_gib``, ``idle_w`` and ``active_w`` must be given. :attr:`PoolFile.sources` says,
for every device group and figure, where it came from.

An invalid file fails with one message naming the file and the field, e.g.
``edge_pool.toml: devices[1].memory_gib: expected a number > 0, got -1``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import TrainingConfigError
from .devices import Figure, device_class, link_class
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
    # device group name -> figure -> "kind: source" or "given in FILE"
    sources: dict[str, dict[str, str]] = field(default_factory=dict)


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
    "tx_nj_per_bit",
    "rx_nj_per_bit",
    "class",
    "link",
}
# figures a device class or a link class can fill in
_CLASS_KEYS = ("flops_per_s", "memory_gib", "idle_w", "active_w")
_LINK_KEYS = ("link_w", "tx_nj_per_bit", "rx_nj_per_bit")


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
    sources: dict[str, dict[str, str]] = {}
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
        values, sources[name] = _figures(path, where, table)
        for key in ("flops_per_s", "memory_gib", "link_mbit_per_s"):
            if values[key] <= 0:
                raise TrainingConfigError(
                    f"{path.name}: {where}{key}: expected a number > 0, got {table.get(key)!r}"
                )
        try:
            profile = DeviceProfile(
                name=name,
                flops_per_s=values["flops_per_s"],
                memory_bytes=int(values["memory_gib"] * 2**30),
                link_bytes_per_s=values["link_mbit_per_s"] * 1e6 / 8,
                link_latency_s=values["link_latency_ms"] / 1e3,
                idle_w=values["idle_w"],
                active_w=values["active_w"],
                link_w=values["link_w"],
                tx_j_per_bit=values["tx_nj_per_bit"] * 1e-9,
                rx_j_per_bit=values["rx_nj_per_bit"] * 1e-9,
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
        sources,
    )


def _figures(
    path: Path, where: str, table: dict[str, Any]
) -> tuple[dict[str, float], dict[str, str]]:
    """A device's figures and where each comes from: the file, else its class or link."""
    defaults: dict[str, Figure] = {}
    try:
        if "class" in table:
            c = device_class(str(table["class"]))
            defaults.update({key: getattr(c, key) for key in _CLASS_KEYS})
        if "link" in table or not any(key in table for key in _LINK_KEYS):
            link = link_class(str(table.get("link", "wifi")))
            defaults["link_w"] = link.link_w
            per_bit = {"tx_nj_per_bit": link.tx_j_per_bit, "rx_nj_per_bit": link.rx_j_per_bit}
            for key, f in per_bit.items():
                defaults[key] = Figure(f.value * 1e9, "nJ/bit", f.kind, f.source)
    except TrainingConfigError as exc:
        key = "class" if "class" in table and "unknown device" in str(exc) else "link"
        raise TrainingConfigError(f"{path.name}: {where}{key}: {exc}") from None
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    fallback = {"link_latency_ms": 1.0, "link_w": 1.0, "tx_nj_per_bit": 0.0, "rx_nj_per_bit": 0.0}
    keys = (*_CLASS_KEYS, "link_mbit_per_s", "link_latency_ms", *_LINK_KEYS)
    for key in keys:
        if key in table:
            values[key] = _number(path, where, table, key)
            sources[key] = f"given in {path.name}"
        elif key in defaults:
            values[key] = defaults[key].value
            sources[key] = f"{defaults[key].kind}: {defaults[key].source}"
        else:
            values[key] = _number(path, where, table, key, fallback.get(key))
            sources[key] = f"default {fallback[key]:g} (not sourced: give {key})"
    return values, sources
