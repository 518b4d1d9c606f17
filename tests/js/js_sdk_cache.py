"""Install the official JS client (``@langchain/langgraph-sdk``) once, into a cache outside the clone.

The cache lives in ``${COGNI_CACHE_DIR:-~/.cache/cogni}/js-sdk-<version>``. An install happens in a
staging directory under a file lock and is moved into place only when npm succeeded, after which a
marker (``installed.json``) is written: a half-finished install is never mistaken for a good one, and
two test runs at once install it only once.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

JS_SDK_PACKAGE = "@langchain/langgraph-sdk"
JS_SDK_VERSION = "2.0.0"  # pinned: the newest release when this was written; installs on node 20
_NPM_TIMEOUT = 240.0
_LOCK_TIMEOUT = 300.0


class JsSdkUnavailable(RuntimeError):
    """npm or node is missing, or the registry could not be reached."""


def cache_root() -> Path:
    configured = os.environ.get("COGNI_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "cogni"


def sdk_dir(version: str = JS_SDK_VERSION, extras: tuple[str, ...] = ()) -> Path:
    suffix = "".join(f"+{spec.replace('/', '_').replace('@', '')}" for spec in extras)
    return cache_root() / f"js-sdk-{version}{suffix}"


def ensure_js_sdk(version: str = JS_SDK_VERSION, extras: tuple[str, ...] = ()) -> Path:
    """Return a directory whose ``node_modules`` holds the SDK, installing it on first use.

    ``extras``: more npm specs installed beside it (peers a part of the SDK imports, e.g.
    ``@langchain/core`` for the thread streams); they are part of the cache directory's name.
    """
    target = sdk_dir(version, extras)
    marker = target / "installed.json"
    if marker.is_file():
        return target
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{target.name}.lock", "w") as lock:
        _lock(lock.fileno())
        if marker.is_file():  # another run installed it while we waited
            return target
        _install(root, target, version, extras)
        marker.write_text(json.dumps({"package": JS_SDK_PACKAGE, "version": version, "at": time.time()}))
    return target


def _lock(fd: int) -> None:
    deadline = time.monotonic() + _LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                held = f"another process holds the JS SDK install lock for {_LOCK_TIMEOUT:.0f}s"
                raise JsSdkUnavailable(held) from None
            time.sleep(0.2)


def _install(root: Path, target: Path, version: str, extras: tuple[str, ...] = ()) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise JsSdkUnavailable("npm is not on PATH: the JS client test needs Node.js 20+ and npm")
    staging = root / f"{target.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    (staging / "package.json").write_text(json.dumps({"private": True, "name": "cogni-js-sdk-cache"}))
    spec = f"{JS_SDK_PACKAGE}@{version}"
    # --legacy-peer-deps: the SDK's peers (@langchain/core, react) are only needed by its React hooks
    command = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--legacy-peer-deps", spec, *extras]
    try:
        done = subprocess.run(command, cwd=staging, capture_output=True, text=True, timeout=_NPM_TIMEOUT)
    except subprocess.TimeoutExpired:
        shutil.rmtree(staging, ignore_errors=True)
        slow = f"`npm install {spec}` did not finish in {_NPM_TIMEOUT:.0f}s (registry unreachable?)"
        raise JsSdkUnavailable(slow) from None
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        failed = f"`npm install {spec}` failed (exit {done.returncode}); is the npm registry reachable?"
        raise JsSdkUnavailable(f"{failed}\n{tail}")
    if not (staging / "node_modules" / JS_SDK_PACKAGE / "package.json").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise JsSdkUnavailable(f"`npm install {spec}` succeeded but the package is missing")
    shutil.rmtree(target, ignore_errors=True)  # a leftover without a marker: an install that died
    staging.rename(target)
