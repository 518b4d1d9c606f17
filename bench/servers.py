"""Start the servers under test (ours, langhost, Aegra, `langgraph dev`) and the mock model, on loopback only.

Each starter is a context manager that yields a `Target` once the server answers its health check
and stops the process (and drops its throwaway database, flushes its Redis database) on exit,
whatever happened in between. The `floor` target (no server: the graphs in-process) is in
bench/floor.py.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from bench.peers import PEERS, ensure_installed, versions
from bench.redisdb import fresh_redis_database
from testsupport import ManagedProcess, free_port, fresh_database

BENCH_DIR = Path(__file__).resolve().parent
GRAPHS_CONFIG = BENCH_DIR / "graphs" / "langgraph.json"
START_TIMEOUT_S = 120.0
QUIET_ENV = {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
}


@dataclass
class Target:
    """A server to measure: where it listens and what it is."""

    name: str
    url: str
    kind: str
    details: dict[str, str] = field(default_factory=dict)
    pid: int | None = None  # the server's process (and session leader) when the bench started it


def require_loopback(url: str) -> str:
    """Refuse any URL that does not point at this machine: the bench only ever loads loopback."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return url.rstrip("/")
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url.rstrip("/")
    except ValueError:
        pass
    raise ValueError(f"{url!r} is not a loopback URL; the bench only targets 127.0.0.0/8, ::1 or localhost")


def start_and_wait(proc: ManagedProcess, health_url: str) -> None:
    """Wait until `health_url` answers; stop the process if it never does (its log is in the error)."""
    try:
        proc.wait_http(health_url, timeout=START_TIMEOUT_S)
    except Exception:
        proc.stop()
        raise


@contextmanager
def _serving(proc: ManagedProcess, health_url: str, target: Target) -> Iterator[Target]:
    """Wait for a started peer to answer `health_url`, yield its target, and stop it afterwards."""
    start_and_wait(proc, health_url)
    try:
        yield target
    finally:
        proc.stop()


def _bin(name: str) -> str:
    """A console script installed beside the interpreter running the bench (our workspace venv)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: run the bench with `uv run python -m bench`")
    return str(path)


@contextmanager
def mock_llm() -> Iterator[str]:
    """The deterministic mock model; yields its OpenAI-compatible base URL (ending in /v1)."""
    port = free_port()
    proc = ManagedProcess.python_module("cogni_mock_llm", "--port", str(port), name="bench-mock-llm")
    start_and_wait(proc, f"http://127.0.0.1:{port}/health")
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.stop()


@contextmanager
def ours(llm_base_url: str, redis_url: str | None = None, name: str = "ours") -> Iterator[Target]:
    """`cogni-server serve` on a fresh Postgres database with the bench graphs.

    The broker is Redis when `redis_url` is given (or REDIS_URL is already set), else in-memory.
    """
    port = free_port()
    redis_url = redis_url or os.environ.get("REDIS_URL") or None
    env = {
        **QUIET_ENV,
        "COGNI_AUTH_MODE": "none",
        "COGNI_LOG_LEVEL": "warning",
        "BENCH_LLM_BASE_URL": llm_base_url,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    with fresh_database("cogni_bench") as database_url, tempfile.TemporaryDirectory() as data_dir:
        env.update(LANGGRAPH_DATABASE_URL=database_url, COGNI_DATA_DIR=data_dir)
        args = [_bin("cogni-server"), "serve", "--config", str(GRAPHS_CONFIG)]
        proc = ManagedProcess(
            [*args, "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=data_dir, name="bench-ours"
        )
        start_and_wait(proc, f"http://127.0.0.1:{port}/ok")
        try:
            yield Target(
                name=name,
                url=f"http://127.0.0.1:{port}",
                kind="cogni-server",
                details={
                    "cogni-server": metadata.version("cogni-server"),
                    "langgraph": metadata.version("langgraph"),
                    "storage": "postgres (fresh database)",
                    "broker": f"redis ({redis_url})" if redis_url else "in-memory",
                },
                pid=proc.proc.pid,
            )
        finally:
            proc.stop()


def absolute_config(workdir: Path) -> Path:
    """A copy of the bench's langgraph.json with absolute paths (`langgraph dev` resolves against its cwd)."""
    config = json.loads(GRAPHS_CONFIG.read_text())
    base = GRAPHS_CONFIG.parent
    config["dependencies"] = [str((base / dep).resolve()) for dep in config.get("dependencies", [])]
    config["graphs"] = {
        graph_id: str((base / spec.split(":")[0]).resolve()) + ":" + spec.split(":", 1)[1]
        for graph_id, spec in config["graphs"].items()
    }
    path = workdir / "langgraph.json"
    path.write_text(json.dumps(config, indent=2))
    return path


@contextmanager
def langgraph_dev(llm_base_url: str) -> Iterator[Target]:
    """`langgraph dev` (in-memory runtime) from its own cached venv, hot reload off."""
    spec = PEERS["langgraph-dev"]
    venv = ensure_installed(spec)
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        args = [str(venv / "bin" / "langgraph"), "dev", "--no-browser", "--no-reload"]
        config = absolute_config(Path(workdir))
        args += ["--host", "127.0.0.1", "--port", str(port), "--config", str(config)]
        args += ["--server-log-level", "WARNING"]
        env = {**QUIET_ENV, "BENCH_LLM_BASE_URL": llm_base_url}
        proc = ManagedProcess(args, env=env, cwd=workdir, name="bench-langgraph-dev")
        target = Target(
            name="langgraph-dev",
            url=f"http://127.0.0.1:{port}",
            kind="langgraph dev",
            details={**versions(venv, spec.report_versions), "storage": "in-memory"},
            pid=proc.proc.pid,
        )
        with _serving(proc, f"{target.url}/ok", target) as served:
            yield served


@contextmanager
def aegra(llm_base_url: str) -> Iterator[Target]:
    """`aegra serve` from its own cached venv on its own fresh Postgres database."""
    spec = PEERS["aegra"]
    venv = ensure_installed(spec)
    port = free_port()
    with fresh_database("aegra_bench") as database_url, tempfile.TemporaryDirectory() as workdir:
        args = [str(venv / "bin" / "aegra"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        args += ["--config", str(GRAPHS_CONFIG)]
        env = {
            **QUIET_ENV,
            "DATABASE_URL": database_url,
            "LOG_LEVEL": "WARNING",
            "BENCH_LLM_BASE_URL": llm_base_url,
        }
        proc = ManagedProcess(args, env=env, cwd=workdir, name="bench-aegra")
        target = Target(
            name="aegra",
            url=f"http://127.0.0.1:{port}",
            kind="aegra serve",
            details={**versions(venv, spec.report_versions), "storage": "postgres (fresh database)"},
            pid=proc.proc.pid,
        )
        with _serving(proc, f"{target.url}/health", target) as served:
            yield served


@contextmanager
def aegra011(llm_base_url: str) -> Iterator[Target]:
    """Aegra 0.11 (`aegra serve`, Python 3.12 venv) on its own fresh Postgres database, no auth.

    Without REDIS_BROKER_ENABLED it uses its in-memory broker, like ours in the default bench.
    """
    spec = PEERS["aegra011"]
    venv = ensure_installed(spec)
    port = free_port()
    with fresh_database("aegra011_bench") as database_url, tempfile.TemporaryDirectory() as workdir:
        args = [str(venv / "bin" / "aegra"), "serve", "--host", "127.0.0.1", "--port", str(port)]
        args += ["-c", str(GRAPHS_CONFIG)]
        env = {
            **QUIET_ENV,
            "DATABASE_URL": database_url,
            "AUTH_TYPE": "noop",
            "LOG_LEVEL": "WARNING",
            "BENCH_LLM_BASE_URL": llm_base_url,
        }
        proc = ManagedProcess(args, env=env, cwd=workdir, name="bench-aegra011")
        target = Target(
            name="aegra011",
            url=f"http://127.0.0.1:{port}",
            kind="aegra serve",
            details={
                **versions(venv, spec.report_versions),
                "storage": "postgres (fresh database)",
                "broker": "in-memory (its default)",
            },
            pid=proc.proc.pid,
        )
        with _serving(proc, f"{target.url}/health", target) as served:
            yield served


LANGHOST_JOBS_PER_WORKER = 10  # langgraph-api's usual default and ours; `langhost serve` alone runs 1


@contextmanager
def langhost(llm_base_url: str) -> Iterator[Target]:
    """`langhost serve` (langgraph-api on langgraph-runtime-pg) on a fresh Postgres database and its
    own Redis database index (flushed afterwards)."""
    spec = PEERS["langhost"]
    venv = ensure_installed(spec)
    port = free_port()
    with (
        fresh_database("langhost_bench") as database_url,
        fresh_redis_database() as redis_url,
        tempfile.TemporaryDirectory() as workdir,
    ):
        config = absolute_config(Path(workdir))
        args = [str(venv / "bin" / "langhost"), "serve", "-c", str(config), "--host", "127.0.0.1", "-p", str(port)]
        args += ["--no-browser", "--server-log-level", "warning"]
        args += ["--n-jobs-per-worker", str(LANGHOST_JOBS_PER_WORKER)]
        env = {
            **QUIET_ENV,
            "DATABASE_URI": database_url,
            "REDIS_URI": redis_url,
            "BENCH_LLM_BASE_URL": llm_base_url,
        }
        proc = ManagedProcess(args, env=env, cwd=workdir, name="bench-langhost")
        target = Target(
            name="langhost",
            url=f"http://127.0.0.1:{port}",
            kind="langhost serve",
            details={
                **versions(venv, spec.report_versions),
                "storage": "postgres (fresh database)",
                "broker": f"redis ({redis_url})",
                "n_jobs_per_worker": str(LANGHOST_JOBS_PER_WORKER),
            },
            pid=proc.proc.pid,
        )
        with _serving(proc, f"{target.url}/ok", target) as served:
            yield served


STARTERS = {"langhost": langhost, "aegra011": aegra011, "langgraph-dev": langgraph_dev, "aegra": aegra}
