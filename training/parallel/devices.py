"""Device and link classes for pool files, every figure with where it comes from.

A pool file names a class (``class = "jetson-orin-nx-16gb"``, ``link = "wifi"``) instead of
typing numbers in, so that a plan's energy and step time rest on figures someone can check.
Each :class:`Figure` says what kind of figure it is:

- ``datasheet``: printed in the maker's datasheet or documentation;
- ``derived``: arithmetic on datasheet figures, shown in the source text (peak FP32 FLOP/s
  is CUDA cores x 2 FLOP per fused multiply-add x the maximum clock);
- ``upper bound`` / ``lower bound``: no figure is published; a published one bounds it (an
  idle draw can be no more than the lowest configurable power budget) or nothing does and
  the bound is 0 W;
- ``measured``: measured on this machine (see :mod:`training.parallel.bench`).

Peak FLOP/s are upper bounds on what a transformer's float32 step sustains, so the
planner's step times from them are lower bounds. Radio figures are the linear power model
of Huang et al., "A Close Examination of Performance and Power Characteristics of 4G LTE
Networks", MobiSys 2012 (Table 4 there): ``P = a_u * t_u + a_d * t_d + b`` with ``t`` the
throughput in Mbit/s; ``a`` in mW per Mbit/s is nJ per bit, ``b`` is the base power of an
active radio. They were measured on 2012 smartphones at tens of Mbit/s; applying them at
other rates extrapolates the linear model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import TrainingConfigError

__all__ = [
    "DEVICE_CLASSES",
    "LINK_CLASSES",
    "DeviceClass",
    "Figure",
    "LinkClass",
    "device_class",
    "link_class",
    "sources_table",
]

Kind = Literal["datasheet", "derived", "upper bound", "lower bound", "measured"]


@dataclass(frozen=True)
class Figure:
    """One constant, its unit, and where it comes from."""

    value: float
    unit: str
    kind: Kind
    source: str


@dataclass(frozen=True)
class DeviceClass:
    """Compute, memory and power of one kind of edge device."""

    name: str
    models: str  # the real device whose figures these are
    flops_per_s: Figure
    memory_gib: Figure
    idle_w: Figure
    active_w: Figure


@dataclass(frozen=True)
class LinkClass:
    """Energy of one kind of radio link: per bit sent, per bit received, base power."""

    name: str
    models: str
    link_w: Figure  # drawn while the radio is active (Huang et al.'s b)
    tx_j_per_bit: Figure
    rx_j_per_bit: Figure


_ORIN_NX = "NVIDIA Jetson Orin NX Series datasheet, Orin NX 16GB"
_ORIN_NANO = "NVIDIA Jetson Orin Nano Series datasheet, Orin Nano 8GB"
_PI_DOCS = (
    "Raspberry Pi documentation, 'Power supply' table: Raspberry Pi 5, 5 A recommended "
    "supply, 1.6 A USB peripheral budget, 800 mA typical bare-board active current, 5.1 V"
)
_L4 = "NVIDIA L4 Tensor Core GPU datasheet (2023)"
_A2 = "NVIDIA A2 Tensor Core GPU datasheet (2021)"
_HUANG = "Huang et al., MobiSys 2012, Table 4 (data-transfer power model)"

DEVICE_CLASSES: dict[str, DeviceClass] = {
    c.name: c
    for c in (
        DeviceClass(
            "jetson-orin-nx-16gb",
            "NVIDIA Jetson Orin NX 16GB module",
            Figure(
                1024 * 2 * 918e6,
                "FLOP/s",
                "derived",
                f"{_ORIN_NX}: 1024-core Ampere GPU at 918 MHz max; 1024 x 2 x 918e6 = 1.88 "
                "TFLOP/s FP32 peak",
            ),
            Figure(16, "GiB", "datasheet", f"{_ORIN_NX}: 16 GB LPDDR5, shared with the CPU"),
            Figure(
                10,
                "W",
                "upper bound",
                f"{_ORIN_NX}: lowest power mode 10 W (no idle figure is published)",
            ),
            Figure(25, "W", "datasheet", f"{_ORIN_NX}: highest power mode 25 W"),
        ),
        DeviceClass(
            "jetson-orin-nano-8gb",
            "NVIDIA Jetson Orin Nano 8GB module",
            Figure(
                1024 * 2 * 625e6,
                "FLOP/s",
                "derived",
                f"{_ORIN_NANO}: 1024-core Ampere GPU at 625 MHz max; 1024 x 2 x 625e6 = 1.28 "
                "TFLOP/s FP32 peak",
            ),
            Figure(8, "GiB", "datasheet", f"{_ORIN_NANO}: 8 GB LPDDR5, shared with the CPU"),
            Figure(7, "W", "upper bound", f"{_ORIN_NANO}: lowest power mode 7 W (no idle figure)"),
            Figure(15, "W", "datasheet", f"{_ORIN_NANO}: highest power mode 15 W"),
        ),
        DeviceClass(
            "raspberry-pi-5-8gb",
            "Raspberry Pi 5 Model B, 8 GB",
            Figure(
                4 * 2.4e9 * 16,
                "FLOP/s",
                "derived",
                "Raspberry Pi 5 product brief: 4 x Cortex-A76 at 2.4 GHz; Arm Cortex-A76 "
                "Software Optimization Guide: two 128-bit ASIMD FMA pipes = 16 FP32 FLOP per "
                "cycle; 4 x 2.4e9 x 16 = 154 GFLOP/s peak",
            ),
            Figure(8, "GiB", "datasheet", "Raspberry Pi 5 product brief: 8 GB LPDDR4X"),
            Figure(5.1 * 0.8, "W", "datasheet", f"{_PI_DOCS}: 5.1 V x 0.8 A = 4.08 W"),
            Figure(
                5.1 * (5 - 1.6),
                "W",
                "upper bound",
                f"{_PI_DOCS}: the supply less the USB budget, 5.1 V x (5 - 1.6) A = 17.3 W",
            ),
        ),
        DeviceClass(
            "nvidia-l4",
            "NVIDIA L4 (Ada, 24 GB, PCIe) in an edge server",
            Figure(30.3e12, "FLOP/s", "datasheet", f"{_L4}: FP32 30.3 TFLOPS peak"),
            Figure(24, "GiB", "datasheet", f"{_L4}: 24 GB GDDR6"),
            Figure(
                0,
                "W",
                "lower bound",
                f"{_L4} gives no idle figure; 0 W (give idle_w from nvidia-smi if you have one)",
            ),
            Figure(72, "W", "datasheet", f"{_L4}: max thermal design power 72 W"),
        ),
        DeviceClass(
            "nvidia-a2",
            "NVIDIA A2 (Ampere, 16 GB, PCIe) in an edge server",
            Figure(4.5e12, "FLOP/s", "datasheet", f"{_A2}: FP32 4.5 TFLOPS peak"),
            Figure(16, "GiB", "datasheet", f"{_A2}: 16 GB GDDR6"),
            Figure(
                0,
                "W",
                "lower bound",
                f"{_A2} gives no idle figure; 0 W (give idle_w from nvidia-smi if you have one)",
            ),
            Figure(60, "W", "datasheet", f"{_A2}: max thermal design power 40-60 W, at 60 W"),
        ),
    )
}

LINK_CLASSES: dict[str, LinkClass] = {
    c.name: c
    for c in (
        LinkClass(
            "wifi",
            "802.11 Wi-Fi radio of a smartphone (Huang et al.'s WiFi model)",
            Figure(0.13286, "W", "datasheet", f"{_HUANG}: WiFi b = 132.86 mW"),
            Figure(283.17e-9, "J/bit", "datasheet", f"{_HUANG}: WiFi a_u = 283.17 mW/Mbps"),
            Figure(137.01e-9, "J/bit", "datasheet", f"{_HUANG}: WiFi a_d = 137.01 mW/Mbps"),
        ),
        LinkClass(
            "lte",
            "4G LTE radio of a smartphone (Huang et al.'s LTE model)",
            Figure(1.28804, "W", "datasheet", f"{_HUANG}: LTE b = 1288.04 mW"),
            Figure(438.39e-9, "J/bit", "datasheet", f"{_HUANG}: LTE a_u = 438.39 mW/Mbps"),
            Figure(51.97e-9, "J/bit", "datasheet", f"{_HUANG}: LTE a_d = 51.97 mW/Mbps"),
        ),
        LinkClass(
            "3g",
            "3G UMTS radio of a smartphone (Huang et al.'s 3G model)",
            Figure(0.81788, "W", "datasheet", f"{_HUANG}: 3G b = 817.88 mW"),
            Figure(868.98e-9, "J/bit", "datasheet", f"{_HUANG}: 3G a_u = 868.98 mW/Mbps"),
            Figure(122.12e-9, "J/bit", "datasheet", f"{_HUANG}: 3G a_d = 122.12 mW/Mbps"),
        ),
    )
}


def device_class(name: str) -> DeviceClass:
    """The device class called ``name``; an unknown name lists the known ones."""
    try:
        return DEVICE_CLASSES[name]
    except KeyError:
        raise TrainingConfigError(
            f"unknown device class {name!r}: choose one of {', '.join(DEVICE_CLASSES)} "
            "or give flops_per_s, memory_gib, idle_w and active_w"
        ) from None


def link_class(name: str) -> LinkClass:
    """The link class called ``name``; an unknown name lists the known ones."""
    try:
        return LINK_CLASSES[name]
    except KeyError:
        raise TrainingConfigError(
            f"unknown link {name!r}: choose one of {', '.join(LINK_CLASSES)} "
            "or give link_w, tx_nj_per_bit and rx_nj_per_bit"
        ) from None


def sources_table() -> list[dict[str, str]]:
    """Every figure of every class as rows (class, models, field, value, kind, source): the
    table the README prints."""
    rows: list[dict[str, str]] = []
    for c in DEVICE_CLASSES.values():
        for field in ("flops_per_s", "memory_gib", "idle_w", "active_w"):
            rows.append(_row(c.name, c.models, field, getattr(c, field)))
    for link in LINK_CLASSES.values():
        for field in ("link_w", "tx_j_per_bit", "rx_j_per_bit"):
            rows.append(_row(link.name, link.models, field, getattr(link, field)))
    return rows


def _row(name: str, models: str, field: str, f: Figure) -> dict[str, str]:
    return {
        "class": name,
        "models": models,
        "field": field,
        "value": f"{f.value:.4g} {f.unit}",
        "kind": f.kind,
        "source": f.source,
    }
