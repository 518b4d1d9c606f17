"""Peer servers installed from PyPI into their own cached virtual environments (never into ours).

Each peer lives in `~/.cache/cogni/peers/<name>-<hash of its pinned requirements>/` (override the
root with `COGNI_PEERS_DIR`), is installed once with uv and reused by later runs. No peer code is
ever copied into this repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_TIMEOUT_S = 900


@dataclass(frozen=True)
class PeerSpec:
    """What to install for a peer and which distributions' versions to report."""

    name: str
    requirements: tuple[str, ...]
    report_versions: tuple[str, ...]


PEERS: dict[str, PeerSpec] = {
    "langgraph-dev": PeerSpec(
        name="langgraph-dev",
        requirements=("langgraph-cli[inmem]==0.4.40", "langgraph-api==0.16.7"),
        report_versions=("langgraph-cli", "langgraph-api", "langgraph-runtime-inmem", "langgraph"),
    ),
    "aegra": PeerSpec(
        name="aegra",
        requirements=("aegra-api==0.6.0", "aegra-cli==0.6.0", "sqlalchemy[asyncio]==2.1.9"),
        report_versions=("aegra-api", "aegra-cli", "langgraph", "sqlalchemy"),
    ),
}


def peers_root() -> Path:
    return Path(os.environ.get("COGNI_PEERS_DIR", Path.home() / ".cache" / "cogni" / "peers"))


def uv_executable() -> str:
    """The uv binary that launched us (`uv run` sets UV), else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        raise RuntimeError("uv is needed to install peer servers; install it from PyPI (pip install uv)")
    return found


def venv_dir(spec: PeerSpec) -> Path:
    key = hashlib.sha256("\n".join(spec.requirements).encode()).hexdigest()[:10]
    return peers_root() / f"{spec.name}-{key}"


def ensure_installed(spec: PeerSpec) -> Path:
    """Return the peer's venv, creating and installing it first if no finished install is there."""
    venv = venv_dir(spec)
    marker = venv / ".cogni-installed"
    if marker.exists():
        return venv
    if venv.exists():
        shutil.rmtree(venv)  # a previous install was interrupted
    venv.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_executable()
    print(f"[bench] installing {spec.name} into {venv} ({' '.join(spec.requirements)})", flush=True)
    subprocess.run([uv, "venv", "--quiet", "--python", "3.11", str(venv)], check=True, timeout=INSTALL_TIMEOUT_S)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *spec.requirements],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    marker.write_text("\n".join(spec.requirements) + "\n")
    return venv


def versions(venv: Path, distributions: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `distributions` inside `venv`."""
    code = (
        "import importlib.metadata as m, sys\n"
        "for d in sys.argv[1:]:\n"
        "    try: print(d, m.version(d))\n"
        "    except m.PackageNotFoundError: print(d, 'missing')\n"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *distributions],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
