"""A local testnet: one root chain and N region chains, each an anvil process.

anvil comes from the npm package ``@foundry-rs/anvil-linux-amd64`` (``npm ci``
in the repository root). We start the binary itself, not npm's node wrapper,
so the pid we record is the node's own and ``down`` stops exactly it.

The manifest ``<dir>/testnet.json``::

    {"nodes": [{"name": "root", "chain_id": 31337, "url": "http://127.0.0.1:PORT",
                "pid": 1234, "port": PORT}, {"name": "region-1", ...}, ...]}

Region chains are named ``region-<id>`` with the scenario's region ids: ``up
--regions 3`` starts regions 1, 2 and 3 (the examples number their regions
from 1), ``--regions 0,1,2,3`` exactly those ids.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, TestnetError

__all__ = [
    "ROOT_CHAIN_ID",
    "AnvilNode",
    "anvil_path",
    "free_port",
    "load_manifest",
    "start_node",
    "stop_node",
    "testnet_down",
    "testnet_up",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ROOT_CHAIN_ID = 31_337
REGION_CHAIN_ID_BASE = 32_000
MANIFEST = "testnet.json"
_SETUP_HINT = "run `npm ci` in the repository root (it installs @foundry-rs/anvil-linux-amd64)"


@dataclass(frozen=True)
class AnvilNode:
    """One running anvil process, as recorded in the manifest."""

    name: str
    chain_id: int
    url: str
    pid: int
    port: int
    #: the Popen when this process started the node (so it can reap it); not saved
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "chain_id": self.chain_id,
            "url": self.url,
            "pid": self.pid,
            "port": self.port,
        }


def anvil_path() -> Path:
    """The anvil binary: ``$SPECLEDGER_ANVIL``, the npm package, or ``anvil`` on PATH."""
    candidates = []
    if env := os.environ.get("SPECLEDGER_ANVIL"):
        candidates.append(Path(env))
    candidates.append(REPO_ROOT / "node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
    if found := shutil.which("anvil"):
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise TestnetError(f"the anvil binary is not installed: {_SETUP_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _rpc(url: str, method: str, timeout_s: float = 1.0) -> object:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return json.loads(response.read())["result"]


def start_node(
    name: str,
    chain_id: int,
    port: int | None = None,
    *,
    log_dir: Path | None = None,
    ready_timeout_s: float = 15.0,
) -> AnvilNode:
    """Start one anvil on 127.0.0.1 and wait until it answers ``eth_chainId``."""
    binary = anvil_path()
    if port is None:
        port = free_port()
    elif _port_in_use(port):
        raise TestnetError(
            f"port {port} on 127.0.0.1 is already in use: choose another port "
            f"or stop what listens there"
        )
    log_path = log_dir / f"{name}.log" if log_dir else None
    # the default 30M block gas limit leaves big settlement batches pending
    command = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--gas-limit",
        "200000000",
        "--silent",
    ]
    if log_path is None:
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
    else:
        with open(log_path, "wb") as log:  # the child keeps its own handle; ours closes
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if proc.poll() is not None:
            raise TestnetError(
                f"anvil for {name} exited at start (code {proc.returncode}); is port {port} free?"
            )
        try:
            if int(str(_rpc(url, "eth_chainId")), 16) == chain_id:
                break
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise TestnetError(
                f"anvil for {name} did not answer on {url} within {ready_timeout_s} s"
            )
        time.sleep(0.02)
    return AnvilNode(name=name, chain_id=chain_id, url=url, pid=proc.pid, port=port, process=proc)


def _is_our_anvil(pid: int) -> bool:
    """True when ``pid`` is still an anvil process (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"anvil" in cmdline


def stop_node(node: AnvilNode | int, timeout_s: float = 5.0) -> bool:
    """Stop this anvil (a node, or a pid from a manifest); False when it was already gone."""
    if isinstance(node, AnvilNode) and node.process is not None:
        node.process.terminate()
        try:
            node.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()
        return True
    pid = node.pid if isinstance(node, AnvilNode) else node
    if not _is_our_anvil(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            # reap it if it is our child; otherwise just watch it disappear
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            if not Path(f"/proc/{pid}").exists():
                return True
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    return True


def region_ids(regions: int | Sequence[int]) -> list[int]:
    """The region ids a testnet serves: ``N`` is ids 1..N; a sequence is those ids."""
    if isinstance(regions, int):
        if regions < 1:
            raise ConfigError(f"--regions must be at least 1, got {regions}")
        return list(range(1, regions + 1))
    ids = list(regions)
    if not ids or len(set(ids)) != len(ids) or any(i < 0 for i in ids):
        raise ConfigError(f"--regions must be distinct region ids >= 0, got {ids}")
    return ids


def testnet_up(
    regions: int | Sequence[int], directory: Path, *, base_port: int | None = None
) -> list[AnvilNode]:
    """Start a root chain and the region chains (``N``: ids 1..N, or the ids given);
    write ``directory/testnet.json``."""
    ids = region_ids(regions)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / MANIFEST
    if manifest.exists() and any(_is_our_anvil(n.pid) for n in load_manifest(manifest)):
        raise TestnetError(
            f"a testnet from {manifest} is still running: "
            f"`specledger testnet down --dir {directory}` first"
        )
    names = [("root", ROOT_CHAIN_ID)] + [(f"region-{i}", REGION_CHAIN_ID_BASE + i) for i in ids]
    nodes: list[AnvilNode] = []
    try:
        for offset, (name, chain_id) in enumerate(names):
            port = None if base_port is None else base_port + offset
            nodes.append(start_node(name, chain_id, port, log_dir=directory))
    except BaseException:
        for node in nodes:  # all or nothing: never leave half a testnet running
            stop_node(node)
        raise
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps({"nodes": [n.to_json() for n in nodes]}, indent=2) + "\n")
    tmp.replace(manifest)
    return nodes


def load_manifest(path: Path) -> list[AnvilNode]:
    """The nodes of a ``testnet.json``; a clear error when it is absent or malformed."""
    if path.is_dir():
        path = path / MANIFEST
    try:
        data = json.loads(path.read_text())
        return [AnvilNode(**node) for node in data["nodes"]]
    except FileNotFoundError:
        raise TestnetError(
            f"no testnet manifest at {path}: `specledger testnet up` writes one"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise TestnetError(f"testnet manifest {path} is malformed: {exc}") from exc


def testnet_down(directory: Path) -> list[str]:
    """Stop every node of the manifest in ``directory``; returns the names stopped."""
    manifest = directory / MANIFEST
    stopped = [node.name for node in load_manifest(manifest) if stop_node(node.pid)]
    manifest.unlink()
    return stopped


@contextmanager
def anvil(name: str = "anvil", chain_id: int = ROOT_CHAIN_ID) -> Iterator[AnvilNode]:
    """One throwaway anvil for the length of a ``with`` block (tests, benchmarks)."""
    node = start_node(name, chain_id)
    try:
        yield node
    finally:
        stop_node(node)
