"""Install `litellm[proxy]` into its own cached virtual environment (outside the clone).

LiteLLM pins its own fastapi/openai, so it never enters the workspace venv. The venv is keyed by
version under `$COGNI_CACHE_DIR` (default `~/.cache/cogni`); a marker written after a successful
install makes later calls instant, and a file lock stops two test processes installing at once.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("cogni_litellm_sink")

# 1.106.3-1.106.10 need certifi>=2026.10.19 and 1.108+ need litellm-enterprise/proxy-extras builds
# that the package index here does not have; 1.106.2 resolves with uv.
DEFAULT_LITELLM_VERSION = "1.106.2"
VERSION_ENV = "COGNI_LITELLM_VERSION"
CACHE_ENV = "COGNI_CACHE_DIR"
MARKER = "installed.json"


def litellm_version() -> str:
    """The LiteLLM version to use: `$COGNI_LITELLM_VERSION` or the pinned default."""
    return os.environ.get(VERSION_ENV) or DEFAULT_LITELLM_VERSION


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cogni").expanduser()


def venv_bin(venv: Path, name: str) -> Path:
    return venv / "bin" / name


@contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process holds {path} for more than {timeout}s") from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _clean_env() -> dict[str, str]:
    """The caller's environment minus the workspace venv, so installs target only our venv."""
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}


def _run(args: list[str], timeout: float) -> None:
    done = subprocess.run(args, env=_clean_env(), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _install(venv: Path, version: str, timeout: float) -> None:
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    requirements = [f"litellm[proxy]=={version}", "psycopg[binary]>=3.2"]
    uv = shutil.which("uv")
    if uv:
        _run([uv, "venv", "--quiet", "--python", python_version, str(venv)], timeout)
        _run([uv, "pip", "install", "--quiet", "--python", str(venv_bin(venv, "python")), *requirements], timeout)
    else:
        _run([sys.executable, "-m", "venv", str(venv)], timeout)
        _run([str(venv_bin(venv, "python")), "-m", "pip", "install", "--quiet", *requirements], timeout)


def ensure_litellm_venv(version: str | None = None, *, timeout: float = 900.0) -> Path:
    """Return a venv with `litellm[proxy]==version` and psycopg, installing it once if needed."""
    version = version or litellm_version()
    home = cache_root() / f"litellm-{version}"
    venv, marker = home / "venv", home / MARKER
    if marker.exists() and venv_bin(venv, "litellm").exists():
        return venv
    with _file_lock(cache_root() / f"litellm-{version}.lock", timeout):
        if marker.exists() and venv_bin(venv, "litellm").exists():
            return venv
        if venv.exists():  # a half-finished install from a crashed run
            shutil.rmtree(venv)
        home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        log.warning("installing litellm[proxy]==%s into %s (once per version)", version, venv)
        _install(venv, version, timeout)
        seconds = round(time.monotonic() - started, 1)
        marker.write_text(json.dumps({"version": version, "install_seconds": seconds, "at": time.time()}))
        log.warning("litellm %s installed in %.1fs", version, seconds)
    return venv
