"""Peer servers installed from PyPI into their own cached virtual environments (never into ours).

Each peer lives in `~/.cache/cogni/peers/<name>-<hash of its pinned requirements and Python>/`
(override the root with `COGNI_PEERS_DIR`), is installed once with uv and reused by later runs. No
peer code is ever copied into this repository.

A peer may need a newer Python than ours (Aegra 0.11 wants >= 3.12). uv cannot download Pythons on
every machine, so the interpreter is found locally: `COGNI_PEER_PYTHON312` (for 3.12; the variable is
named after the version), else pyenv's versions, else `python3.12` on PATH.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_TIMEOUT_S = 900
OUR_PYTHON = "3.11"


@dataclass(frozen=True)
class PeerSpec:
    """What to install for a peer, on which Python, and which distributions' versions to report."""

    name: str
    requirements: tuple[str, ...]
    report_versions: tuple[str, ...]
    python: str = OUR_PYTHON  # "major.minor" the peer's venv is created with


PEERS: dict[str, PeerSpec] = {
    # History: the peers of the first comparisons (issue 3).
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
    # Today's peers (issue 9).
    "aegra011": PeerSpec(
        name="aegra011",
        requirements=("aegra-api==0.11.0", "aegra-cli==0.11.0"),
        report_versions=("aegra-api", "aegra-cli", "langgraph", "langgraph-checkpoint-postgres"),
        python="3.12",
    ),
    "langhost": PeerSpec(
        name="langhost",
        requirements=("langhost==0.11.1.post1", "langgraph-runtime-pg==0.11.1.post1"),
        report_versions=("langhost", "langgraph-runtime-pg", "langgraph-api", "langgraph"),
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


def python_env_var(version: str) -> str:
    """`COGNI_PEER_PYTHON312` for "3.12": where to point the bench at an interpreter by hand."""
    return "COGNI_PEER_PYTHON" + version.replace(".", "")


def _reports_version(executable: str, version: str) -> bool:
    try:
        out = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    return out == version


def find_python(version: str, *, pyenv_root: Path | None = None, path: str | None = None) -> str:
    """A local interpreter of `version` ("3.12") for a peer's venv.

    Order: the `COGNI_PEER_PYTHON<XY>` variable (must exist and be that version), pyenv's
    `versions/<version>.*` (newest first), `python<version>` on PATH. Raises with what to do if none.
    """
    variable = python_env_var(version)
    override = os.environ.get(variable)
    if override:
        if not _reports_version(override, version):
            raise RuntimeError(f"{variable}={override!r} is not a working Python {version} interpreter")
        return override
    root = pyenv_root or Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(glob.glob(str(root / "versions" / f"{version}.*" / "bin" / f"python{version}")), reverse=True)
    on_path = shutil.which(f"python{version}", path=path)
    if on_path:
        candidates.append(on_path)
    for candidate in candidates:
        if _reports_version(candidate, version):
            return candidate
    raise RuntimeError(
        f"this peer needs Python {version} and none was found (looked in {root}/versions and PATH; "
        f"uv cannot download one here): install it, or set {variable}=/path/to/python{version}"
    )


def interpreter_for(spec: PeerSpec) -> str:
    """What `uv venv --python` gets: our own version by name (uv finds it), any other one by path."""
    return spec.python if spec.python == OUR_PYTHON else find_python(spec.python)


def venv_dir(spec: PeerSpec) -> Path:
    key_parts = list(spec.requirements) if spec.python == OUR_PYTHON else [*spec.requirements, f"python{spec.python}"]
    key = hashlib.sha256("\n".join(key_parts).encode()).hexdigest()[:10]
    return peers_root() / f"{spec.name}-{key}"


def ensure_installed(spec: PeerSpec) -> Path:
    """Return the peer's venv, creating and installing it first if no finished install is there."""
    venv = venv_dir(spec)
    marker = venv / ".cogni-installed"
    if marker.exists():
        return venv
    python = interpreter_for(spec)
    if venv.exists():
        shutil.rmtree(venv)  # a previous install was interrupted
    venv.parent.mkdir(parents=True, exist_ok=True)
    uv = uv_executable()
    print(f"[bench] installing {spec.name} into {venv} (Python {spec.python}: {' '.join(spec.requirements)})")
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True, timeout=INSTALL_TIMEOUT_S)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), *spec.requirements],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    marker.write_text("\n".join(spec.requirements) + f"\npython {spec.python}\n")
    return venv


def versions(venv: Path, distributions: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `distributions` inside `venv` (and its Python)."""
    code = (
        "import importlib.metadata as m, platform, sys\n"
        "print('python', platform.python_version())\n"
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
