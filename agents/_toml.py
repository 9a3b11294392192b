"""Reading a scenario file's TOML, every way it can fail one line that names the file
(kept apart from :mod:`agents.scenario`, which validates what it reads)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from .errors import ScenarioError

__all__ = ["MAX_TOML_BYTES", "read_toml"]

MAX_TOML_BYTES = 1 << 20  # a scenario is a few KiB; a MiB is no scenario


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML: every way it can fail is one line naming it."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{path}: is a directory, expected a scenario file (TOML)") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    if len(raw) > MAX_TOML_BYTES:
        raise ScenarioError(
            f"{path.name}: expected a scenario file of at most {MAX_TOML_BYTES} bytes, got more"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{path.name}: expected UTF-8 text (TOML), got byte 0x{raw[exc.start]:02x} "
            f"at offset {exc.start}: not a text file?"
        ) from None
    try:
        return tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, and integers too long to convert
        raise ScenarioError(f"{path.name}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ScenarioError(f"{path.name}: not valid TOML: nested too deeply") from None
