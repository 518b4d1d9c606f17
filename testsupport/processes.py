"""Start real child processes for integration and stack tests, and stop them cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx


def wait_for_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll `url` until it answers 2xx; fail early if `proc` exits first."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code < 300:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer 2xx within {timeout}s (last: {last!r})")


class ManagedProcess:
    """A child process whose output goes to a log file that is shown when something fails."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        name: str = "proc",
    ) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            list(args),
            env=full_env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @classmethod
    def python_module(cls, module: str, *args: str, **kwargs: object) -> ManagedProcess:
        """Run `python -m module args...` with this interpreter."""
        return cls([sys.executable, "-m", module, *args], **kwargs)  # type: ignore[arg-type]

    def wait_http(self, url: str, timeout: float = 60.0) -> None:
        try:
            wait_for_http(url, timeout=timeout, proc=self.proc)
        except Exception as exc:
            raise RuntimeError(f"{self.name} did not come up: {exc}\n--- log ---\n{self.output()}") from exc

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def kill(self) -> None:
        """SIGKILL the whole process group: simulates a crash."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if it will not go."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self._log.close()
        return self.proc.returncode
