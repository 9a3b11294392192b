"""The rooms of ../shared/ARCHITECTURE.md and who may import whom, checked from the code itself.

- ledger/ never imports torch, training/ never imports web3 (nor the ledger);
- records, config and mechanisms are pure: importing them loads no chain library;
- ledger/chain/ imports nothing from region/, bindings/ or audit/;
- the rooms of each package import each other without circles;
- every module stays a size a person can read: at most 500 lines, classes at most 250.
"""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import ledger
import training

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "agents", "training")
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 250


def _all_modules(package) -> list[str]:
    return [package.__name__] + [
        m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]


def _loaded_after(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(x for x in {watched!r} if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout)  # a printed list of names


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (ledger, ("torch", "training", "agents")),
        (training, ("web3", "eth_tester", "ledger", "agents")),
    ],
    ids=["ledger-without-torch", "training-without-web3"],
)
def test_layer_never_imports(package, forbidden: tuple[str, ...]):
    assert _loaded_after(_all_modules(package), forbidden) == []


def test_records_and_mechanisms_load_no_chain_library():
    pure = ["ledger.mechanisms", "ledger.records", "ledger.config", "ledger.eip712"]
    assert _loaded_after(pure, ("web3", "eth_tester", "eth")) == []


def test_the_check_sees_a_chain_library():  # the test above can fail
    assert _loaded_after(["ledger.chain"], ("web3", "eth_tester")) == ["eth_tester", "web3"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports, absolute, at run time (``if TYPE_CHECKING:`` left out)."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _room(module: str, package: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == package and len(parts) > 1 else None


def test_chain_imports_nothing_of_the_market():
    market = {"region", "bindings", "audit"}
    bad = {
        str(p.relative_to(ROOT)): hits
        for p in _sources("ledger/chain")
        if (hits := sorted(m for m in _imports(p) if _room(m, "ledger") in market))
    }
    assert bad == {}


@pytest.mark.parametrize("package", PACKAGES)
def test_rooms_import_each_other_without_circles(package: str):
    graph = nx.DiGraph()
    for path in _sources(package):
        room = _room(_module_name(path), package)
        if room is None:
            continue
        for module in _imports(path):
            other = _room(module, package)
            is_room = other is not None and (
                (ROOT / package / other).is_dir() or (ROOT / package / f"{other}.py").exists()
            )
            if is_room and other != room:
                graph.add_edge(room, other)
    assert list(nx.simple_cycles(graph)) == []


def _sub_packages() -> list[Path]:
    return sorted({p.parent for package in PACKAGES for p in _sources(package)})


@pytest.mark.parametrize(
    "folder", _sub_packages(), ids=lambda p: str(p.relative_to(ROOT)).replace("/", ".")
)
def test_modules_of_a_room_import_each_other_without_circles(folder: Path):
    graph = nx.DiGraph()
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        here = _module_name(path)
        graph.add_node(here)
        for module in _imports(path):
            sibling = folder / (module.rsplit(".", 1)[-1] + ".py")
            if module.rsplit(".", 1)[0] == _module_name(folder / "__init__.py") and (
                sibling.exists() and sibling.name != "__init__.py" and module != here
            ):
                graph.add_edge(here, module)
    assert list(nx.simple_cycles(graph)) == []


def test_the_circle_check_sees_a_circle():
    graph = nx.DiGraph([("region", "bindings"), ("bindings", "region")])
    assert list(nx.simple_cycles(graph)) != []


def _too_big() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in _sources(package):
            text = path.read_text()
            lines = text.count("\n")
            if lines > MAX_MODULE_LINES:
                found.append(f"{path.relative_to(ROOT)}: {lines} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ClassDef):
                    size = (node.end_lineno or node.lineno) - node.lineno + 1
                    if size > MAX_CLASS_LINES:
                        found.append(f"{path.relative_to(ROOT)}: class {node.name} {size} lines")
    return found


def test_every_room_is_a_size_a_person_can_read():
    assert _too_big() == []
