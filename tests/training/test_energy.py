"""The planner's sourced constants, per-bit radio energy, the side-by-side comparison, and
RAPL-measured CPU energy (on a powercap tree laid out in a temp directory)."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from training.errors import TrainingConfigError, TrainingError
from training.parallel import MODES, DeviceProfile, TransformerShape, estimate
from training.parallel.bench import cpu_energy
from training.parallel.devices import (
    DEVICE_CLASSES,
    LINK_CLASSES,
    device_class,
    link_class,
    sources_table,
)
from training.parallel.energy import step_energy
from training.parallel.planner import compare, plan
from training.parallel.pool import load_pool
from training.parallel.rapl import RaplUnavailable, open_rapl
from training.parallel.report import side_by_side

TINY = TransformerShape()
# a step of some milliseconds: long beside the fake counter's 2 ms updates
STEP = TransformerShape(layers=2, hidden=128, heads=4, ffn=256, vocab=100, seq_len=64, batch=8)
GIB = 2**30
EXAMPLE = Path(__file__).parents[2] / "examples" / "edge_pool.toml"


def device(name: str = "d", **over: float) -> DeviceProfile:
    base = dict(
        flops_per_s=1e12,
        memory_bytes=8 * GIB,
        link_bytes_per_s=1e6,
        link_latency_s=1e-3,
        idle_w=2.0,
        active_w=10.0,
        link_w=1.0,
        tx_j_per_bit=100e-9,
        rx_j_per_bit=50e-9,
    )
    return DeviceProfile(name=name, **{**base, **over})  # type: ignore[arg-type]


# -- the constants -------------------------------------------------------------------------------
def test_every_constant_names_its_source_and_kind():
    rows = sources_table()
    assert len(rows) == 4 * len(DEVICE_CLASSES) + 3 * len(LINK_CLASSES)
    for row in rows:
        assert row["kind"] in ("datasheet", "derived", "upper bound", "lower bound", "measured")
        assert len(row["source"]) > 20 and row["models"], row
    # derived figures are the arithmetic their source states
    nx = device_class("jetson-orin-nx-16gb").flops_per_s
    assert nx.kind == "derived" and nx.value == pytest.approx(1024 * 2 * 918e6)
    assert "918 MHz" in nx.source and "1.88" in nx.source
    pi = device_class("raspberry-pi-5-8gb")
    assert pi.idle_w.value == pytest.approx(5.1 * 0.8) and "800 mA" in pi.idle_w.source
    # the per-bit figures are Huang et al.'s mW/Mbps, which is nJ/bit
    wifi = link_class("wifi")
    assert wifi.tx_j_per_bit.value == pytest.approx(283.17e-3 / 1e6)
    assert "283.17 mW/Mbps" in wifi.tx_j_per_bit.source
    for c in DEVICE_CLASSES.values():
        assert c.active_w.value >= c.idle_w.value  # a DeviceProfile accepts every class


def test_unknown_classes_list_the_known_ones():
    with pytest.raises(TrainingConfigError, match="unknown device class 'jetson'.*nvidia-l4"):
        device_class("jetson")
    with pytest.raises(TrainingConfigError, match="unknown link '5g': choose one of wifi, lte"):
        link_class("5g")


# -- the energy model ------------------------------------------------------------------------------
def test_step_energy_matches_a_hand_computed_example():
    # d0: computes 1 s, sends 1e5 B at 1e6 B/s (0.1 s), idles 0.9 s of a 2 s step
    # d1: computes 0.5 s, sends 2e5 B (0.2 s), idles 1.3 s
    d = device()
    e = step_energy([d, d], [1.0, 0.5], [1e5, 2e5], 2.0)
    assert e.compute_j == pytest.approx(10 * 1.0 + 10 * 0.5)
    assert e.link_j == pytest.approx(1 * 0.1 + 1 * 0.2)
    assert e.idle_j == pytest.approx(2 * 0.9 + 2 * 1.3)
    # every byte sent costs 8 bits x 100 nJ, and is received (50 nJ/bit) by the same device
    assert e.radio_j == pytest.approx(8 * 1e5 * 150e-9 + 8 * 2e5 * 150e-9)
    assert e.total_j == pytest.approx(15 + 0.3 + 4.4 + 0.36)
    received = step_energy([d, d], [1.0, 0.5], [1e5, 2e5], 2.0, received_bytes=[0, 0])
    assert received.radio_j == pytest.approx(8 * 3e5 * 100e-9)


@pytest.mark.parametrize("mode", MODES)
def test_every_byte_a_mode_moves_pays_the_radios_energy_per_bit(mode):
    pool = [device(f"d{i}") for i in range(2)]
    silent = [replace(d, tx_j_per_bit=0.0, rx_j_per_bit=0.0) for d in pool]
    with_radio, without = estimate(mode, TINY, pool), estimate(mode, TINY, silent)
    per_bit = pool[0].tx_j_per_bit + pool[0].rx_j_per_bit
    assert with_radio.radio_energy_j == pytest.approx(8 * with_radio.bytes_per_step * per_bit, 1e-6)
    assert without.radio_energy_j == 0
    assert with_radio.energy_j - without.energy_j == pytest.approx(with_radio.radio_energy_j)
    parts = (
        with_radio.compute_energy_j
        + with_radio.idle_energy_j
        + with_radio.link_energy_j
        + with_radio.radio_energy_j
    )
    assert with_radio.energy_j == pytest.approx(parts)
    assert with_radio.step_s == without.step_s  # energy per bit costs no time


def test_per_bit_energy_can_change_the_choice():
    """Data parallelism sends every gradient; pipeline only the cut. With free bits the
    faster devices-at-work win on energy; with LTE's per-bit cost the traffic decides."""
    shape = TransformerShape(
        layers=4, hidden=256, heads=8, ffn=1024, vocab=1000, seq_len=128, batch=8, microbatches=4
    )
    lte = link_class("lte")
    free = [device(f"d{i}", tx_j_per_bit=0.0, rx_j_per_bit=0.0) for i in range(2)]
    costly = [
        replace(d, tx_j_per_bit=lte.tx_j_per_bit.value, rx_j_per_bit=lte.rx_j_per_bit.value)
        for d in free
    ]
    both = {name: compare(shape, pool, 2) for name, pool in (("free", free), ("lte", costly))}
    # the radio term ranks the modes by bytes moved
    ranked = sorted(MODES, key=lambda m: both["lte"][m].radio_energy_j)
    assert ranked == sorted(MODES, key=lambda m: both["lte"][m].bytes_per_step)
    assert both["lte"]["data"].energy_j > both["free"]["data"].energy_j


# -- pool files with classes -----------------------------------------------------------------------
def test_a_pool_device_takes_its_class_figures_and_their_sources(tmp_path):
    path = tmp_path / "pool.toml"
    path.write_text(
        '[[devices]]\nname = "pi"\nclass = "raspberry-pi-5-8gb"\nlink = "lte"\n'
        "link_mbit_per_s = 100\nidle_w = 3.5\n"
        '[[devices]]\nname = "plain"\nflops_per_s = 1e12\nmemory_gib = 4\n'
        "link_mbit_per_s = 100\nidle_w = 1\nactive_w = 2\n"
    )
    pf = load_pool(path)
    pi, plain = pf.devices
    c, lte, wifi = device_class("raspberry-pi-5-8gb"), link_class("lte"), link_class("wifi")
    assert pi.flops_per_s == c.flops_per_s.value and pi.memory_bytes == 8 * GIB
    assert pi.active_w == c.active_w.value and pi.idle_w == 3.5  # the file overrides
    assert pi.tx_j_per_bit == pytest.approx(lte.tx_j_per_bit.value)
    assert pi.link_w == lte.link_w.value
    assert plain.rx_j_per_bit == pytest.approx(wifi.rx_j_per_bit.value)  # wifi by default
    assert pf.sources["pi"]["idle_w"] == "given in pool.toml"
    assert pf.sources["pi"]["active_w"].startswith("upper bound: Raspberry Pi documentation")
    assert pf.sources["pi"]["tx_nj_per_bit"].startswith("datasheet: Huang et al.")
    assert pf.sources["plain"]["flops_per_s"] == "given in pool.toml"
    assert "not sourced" in pf.sources["plain"]["link_latency_ms"]


@pytest.mark.parametrize(
    "text,message",
    [
        ('[[devices]]\nclass = "jetson"\nlink_mbit_per_s = 1\n', "devices[0].class: unknown"),
        (
            '[[devices]]\nclass = "nvidia-l4"\nlink = "5g"\nlink_mbit_per_s = 1\n',
            "devices[0].link: unknown link '5g'",
        ),
        ('[[devices]]\nclass = "nvidia-l4"\n', "devices[0].link_mbit_per_s: missing"),
        (
            '[[devices]]\nclass = "nvidia-l4"\nlink_mbit_per_s = 1\ntx_nj_per_bit = -1\n',
            "devices[0].tx_nj_per_bit: expected a number >= 0, got -1",
        ),
    ],
    ids=["class", "link", "rate", "per-bit"],
)
def test_bad_classes_in_pool_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "pool.toml"
    path.write_text(text)
    with pytest.raises(TrainingConfigError) as caught:
        load_pool(path)
    assert str(caught.value).startswith("pool.toml: ") and message in str(caught.value)


# -- the four modes side by side ---------------------------------------------------------------
def test_compare_puts_every_mode_on_the_same_devices():
    pf = load_pool(EXAMPLE)
    for n in (1, 2, 4):
        side = compare(pf.shape, pf.devices, n)
        assert set(side) == set(MODES)
        names = {e.device_names for e in side.values()}
        assert len(names) == 1 and all(e.devices == n for e in side.values())
        fastest = sorted(pf.devices, key=lambda d: (-d.flops_per_s, d.name))[:n]
        for mode, e in side.items():
            assert e == estimate(mode, pf.shape, fastest)
    with pytest.raises(TrainingError, match="devices = 7: the pool has 6; give 1 to 6"):
        compare(pf.shape, pf.devices, 7)


def test_side_by_side_ranks_the_modes_that_fit():
    pf = load_pool(EXAMPLE)
    report = side_by_side(pf, 4, "energy")
    fitting = {m: r for m, r in report["modes"].items() if r["fits"]}
    assert fitting and set(report["modes"]) == set(MODES)
    by_energy = sorted(fitting, key=lambda m: fitting[m]["energy_j"])
    assert [fitting[m]["energy_rank"] for m in by_energy] == list(range(1, len(by_energy) + 1))
    assert report["lowest_energy"] == by_energy[0] == report["chosen"]
    assert report["chosen"] == plan(pf.shape, pf.devices, "energy", devices=4).chosen.mode
    assert report["lease"]["devices"] == 4
    for row in report["modes"].values():
        if not row["fits"]:
            assert row["energy_rank"] is None and row["why_not"]
    # 1.3 B parameters fit on no single device: every mode says so, nothing is chosen
    alone = side_by_side(pf, 1, "energy")
    assert alone["chosen"] is None and alone["lease"] is None
    assert all("GiB per device" in r["why_not"] for r in alone["modes"].values())


def test_plan_devices_prints_the_four_modes(tmp_path):
    from agents.cli import main

    result = CliRunner().invoke(main, ["plan", str(EXAMPLE), "--devices", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["devices"] == 2 and set(data["modes"]) == set(MODES)
    assert data["sources"]["edge-gpu"]["flops_per_s"].startswith("datasheet: NVIDIA L4")
    table = CliRunner().invoke(main, ["plan", str(EXAMPLE), "--devices", "2"])
    assert table.exit_code == 0
    for mode in MODES:
        assert mode in table.output
    bad = CliRunner().invoke(main, ["plan", str(EXAMPLE), "--devices", "9"])
    assert bad.exit_code == 1 and "devices = 9: the pool has 6" in bad.output


# -- RAPL ----------------------------------------------------------------------------------------
def powercap(root: Path, packages: dict[int, tuple[int, int]]) -> Path:
    """A powercap tree: package N with (energy_uj, max_energy_range_uj), a core sub-domain
    and a psys domain that must not be added in."""
    for n, (energy, top) in packages.items():
        pkg = root / f"intel-rapl:{n}"
        (pkg / f"intel-rapl:{n}:0").mkdir(parents=True)
        (pkg / "name").write_text(f"package-{n}\n")
        (pkg / "energy_uj").write_text(f"{energy}\n")
        (pkg / "max_energy_range_uj").write_text(f"{top}\n")
        (root / f"intel-rapl:{n}:0").mkdir()
        (root / f"intel-rapl:{n}:0" / "name").write_text("core\n")
        (root / f"intel-rapl:{n}:0" / "energy_uj").write_text("999999\n")
    psys = root / "intel-rapl:9"
    psys.mkdir()
    (psys / "name").write_text("psys\n")
    (psys / "energy_uj").write_text("123\n")
    (psys / "max_energy_range_uj").write_text("1000\n")
    return root


def test_the_reader_sums_packages_and_handles_wrap_around(tmp_path):
    top = 262_143_328_850
    root = powercap(tmp_path, {0: (top - 1_000_000, top), 1: (5_000_000, top)})
    rapl = open_rapl(root)
    assert [d.name for d in rapl.domains] == ["package-0", "package-1"]
    before = rapl.read()
    assert before == (top - 1_000_000, 5_000_000)
    (root / "intel-rapl:0" / "energy_uj").write_text("2000000\n")  # wrapped past the range
    (root / "intel-rapl:1" / "energy_uj").write_text("6000000\n")
    after = rapl.read()
    # package 0: 1 J up to the range, then 2 J past 0; package 1: 1 J
    assert rapl.joules(before, after) == pytest.approx(3.0 + 1.0)
    assert rapl.describe() == "available: package-0 (intel-rapl:0), package-1 (intel-rapl:1)"


def test_the_reader_says_why_it_cannot_read(tmp_path, monkeypatch):
    with pytest.raises(RaplUnavailable, match="no .*missing .*powercap driver"):
        open_rapl(tmp_path / "missing")
    with pytest.raises(RaplUnavailable, match="no intel-rapl package domain under"):
        open_rapl(tmp_path)
    root = powercap(tmp_path / "locked", {0: (10, 100)})
    target = root / "intel-rapl:0" / "energy_uj"
    real = Path.read_text

    def refuse(self: Path, *args, **kwargs):  # the kernel's answer to non-root since 5.10
        if self == target:
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(RaplUnavailable, match="permission denied reading .*CVE-2020-8694"):
        open_rapl(root)


def test_bench_energy_says_plainly_when_rapl_is_unavailable(tmp_path):
    block, _, timing = cpu_energy(TINY, 2, 1, rapl_root=tmp_path / "none")
    assert block["measured_cpu_energy_j"] is None and block["measured_over_estimated"] is None
    assert block["rapl"].startswith("unavailable: no ")
    assert "raspberry-pi-5-8gb" in block["watts_source"]
    # the estimate: one device active through the steps, the other idle
    pi = device_class("raspberry-pi-5-8gb")
    steps = len(timing.wall)
    median = sorted(timing.wall)[steps // 2]
    want = steps * median * (pi.active_w.value + pi.idle_w.value)
    assert block["estimated_cpu_energy_j"] == pytest.approx(want, rel=1e-3)


def test_bench_energy_measured_with_rapl_matches_a_constant_draw(tmp_path):
    """A package that draws a constant 20 W (its counter advanced by a thread, wrapping
    past its range once): the measured joules are 20 W x the steps' time, and the estimate
    from watts measured on the same counter agrees."""
    top = 100_000_000  # 100 J: wraps within the first calibration window
    start = top - 3_000_000
    root = powercap(tmp_path, {0: (start, top)})
    counter = root / "intel-rapl:0" / "energy_uj"
    stop = threading.Event()
    t0 = time.perf_counter()

    def draw() -> None:
        while not stop.is_set():
            value = int(start + 20e6 * (time.perf_counter() - t0)) % top
            tmp = counter.with_suffix(".tmp")
            tmp.write_text(f"{value}\n")
            os.replace(tmp, counter)
            time.sleep(0.002)

    writer = threading.Thread(target=draw, daemon=True)
    writer.start()
    try:
        block, watts, timing = cpu_energy(STEP, 2, 1, rapl_root=root, repeats=10)
    finally:
        stop.set()
        writer.join()
    assert block["rapl"] == "available: package-0 (intel-rapl:0)"
    assert watts.idle_w == pytest.approx(10.0, rel=0.1)  # 20 W shared by 2 devices
    assert watts.active_w == pytest.approx(10.0, rel=0.1)  # 20 W less the other's idle
    assert "measured here with RAPL" in block["watts_source"]
    assert block["measured_cpu_energy_j"] == pytest.approx(20 * sum(timing.wall), rel=0.25)
    assert block["measured_over_estimated"] == pytest.approx(1.0, rel=0.25)
