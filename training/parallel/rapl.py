"""CPU package energy from Linux powercap (Intel RAPL; AMD's rapl driver uses it too).

``/sys/class/powercap/intel-rapl:N`` is package ``N``; its ``energy_uj`` counts
microjoules since some start and wraps to 0 past ``max_energy_range_uj``. Sub-domains
(``intel-rapl:N:M``: core, uncore, dram) are parts of a package and are not added again;
a ``psys`` domain (the whole platform) is skipped for the same reason. A reading across a
window therefore sums, over packages, ``after - before``, plus the range once if the
counter wrapped; a window longer than one wrap (minutes to hours, depending on the
range and the draw) cannot be told apart, so callers keep windows short.

What it measures is every process on the package, not only ours. Since Linux 5.10
(CVE-2020-8694) ``energy_uj`` is readable by root only, and containers and VMs often have
no powercap at all: :func:`open_rapl` then says why in one line instead of failing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import TrainingError

__all__ = ["POWERCAP", "Rapl", "RaplDomain", "RaplUnavailable", "open_rapl"]

POWERCAP = Path("/sys/class/powercap")
_PACKAGE = re.compile(r"^intel-rapl:\d+$")


class RaplUnavailable(TrainingError):
    """This machine exposes no readable RAPL package counter; the message says why."""


@dataclass(frozen=True)
class RaplDomain:
    """One package's counter."""

    name: str  # e.g. package-0
    path: Path
    max_energy_uj: int  # the counter wraps to 0 past this


class Rapl:
    """Reads the package counters under ``root`` (a powercap tree; tests pass a copy)."""

    def __init__(self, domains: list[RaplDomain]) -> None:
        if not domains:
            raise RaplUnavailable("no RAPL package domain")
        self.domains = domains

    def read(self) -> tuple[int, ...]:
        """Every package's counter now, in microjoules."""
        return tuple(_read_int(d.path / "energy_uj") for d in self.domains)

    def joules(self, before: tuple[int, ...], after: tuple[int, ...]) -> float:
        """Energy between two readings, summed over packages; a counter that went down
        wrapped once past its range."""
        total = 0
        for d, b, a in zip(self.domains, before, after, strict=True):
            total += a - b if a >= b else a + d.max_energy_uj - b
        return total / 1e6

    def describe(self) -> str:
        return "available: " + ", ".join(f"{d.name} ({d.path.name})" for d in self.domains)


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except PermissionError:
        raise RaplUnavailable(
            f"permission denied reading {path} (root only since Linux 5.10, CVE-2020-8694)"
        ) from None
    except (OSError, ValueError) as exc:
        raise RaplUnavailable(f"cannot read {path}: {exc}") from None


def open_rapl(root: Path | str = POWERCAP) -> Rapl:
    """The package counters under ``root``, each read once to check that it can be; raises
    :class:`RaplUnavailable` with the reason otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise RaplUnavailable(
            f"no {root} (not Linux, or a container or VM without the powercap driver)"
        )
    domains = []
    for path in sorted(root.iterdir()):
        if not _PACKAGE.match(path.name):
            continue
        name = (path / "name").read_text().strip() if (path / "name").is_file() else path.name
        if not name.startswith("package"):
            continue  # psys counts the whole platform, packages included
        domains.append(RaplDomain(name, path, _read_int(path / "max_energy_range_uj")))
    if not domains:
        raise RaplUnavailable(f"no intel-rapl package domain under {root}")
    rapl = Rapl(domains)
    rapl.read()
    return rapl
