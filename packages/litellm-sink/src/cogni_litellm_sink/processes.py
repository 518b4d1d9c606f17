"""Child-process plumbing of the proxy runner: wait until a spawned server answers, stop its process group.

Stdlib only, because this package must run anywhere it is installed and may not import the
workspace's `testsupport`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


def log_tail(path: Path, chars: int = 8000) -> str:
    """The last `chars` characters of a process log ("" when there is no log yet)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


def wait_for_http_ok(
    url: str,
    process: subprocess.Popen[bytes],
    log_path: Path,
    *,
    timeout: float,
    name: str,
    interval: float = 0.1,
) -> None:
    """Poll `url` until it answers 200; fail with the log's tail if `process` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} before {url} answered:\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval)
    raise TimeoutError(f"{name} not live at {url} after {timeout}s:\n{log_tail(log_path)}")


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process group started with `start_new_session=True`, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass
