"""Every third-party package the code imports is one pyproject.toml declares.

Read from the code's own imports (every module of ledger/, agents/ and training/,
imports inside functions too), so a new import without a declared dependency
fails here instead of on a user's fresh machine.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "agents", "training")


def _imported_top_level() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in PACKAGES and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    found.pop("__future__", None)
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {_normal(re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0]) for r in requirements}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_package_is_declared():
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = {}
    for module, where in sorted(_imported_top_level().items()):
        dists = {_normal(d) for d in distributions.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(where)[:3]
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_check_sees_imports_inside_functions():
    # ledger/audit exports parquet with pyarrow, imported only where it is used
    assert "pyarrow" in _imported_top_level()
