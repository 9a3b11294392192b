"""The layers of ARCHITECTURE.md: ledger/ never imports torch, training/ never imports web3."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import ledger
import training


def _all_modules(package) -> list[str]:
    return [package.__name__] + [
        m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        (ledger, ("torch", "training", "agents")),
        (training, ("web3", "eth_tester", "ledger", "agents")),
    ],
    ids=["ledger-without-torch", "training-without-web3"],
)
def test_layer_never_imports(package, forbidden: tuple[str, ...]):
    modules = _all_modules(package)
    code = (
        f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(x for x in {forbidden!r} if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", f"{package.__name__} pulled in {out.stdout.strip()}"
