"""The whole topology as processes on loopback, each of which the campaign can kill and start again.

- Postgres: a throwaway cluster of its own (`cogni_server.embedded_pg.EmbeddedPostgres`: initdb in a
  temporary directory, `postgres` on a free port), holding the server's, the app's and the spend-log
  sink's databases, so restarting it touches nothing else on the machine;
- Redis: its own `redis-server` on a free port (no persistence, as a broker usually runs);
- the mock model, and the LiteLLM proxy with the spend-log sink writing into the sink database;
- two `cogni-server serve` instances (JWT auth, Redis broker, short leases) behind the balancer
  (bench/chaos/balancer.py);
- `cogni-app serve` with the server executor, pointed at the balancer;
- `cogni-app reconcile-worker`, the billing worker: it sweeps the spend log every second whether or not
  the app is alive (the app keeps its stream charge, post-run reconcile and default 300 s sweep), as in
  deploy/compose.yaml and deploy/k8s.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.chaos.balancer import Balancer
from cogni_litellm_sink.proxy import LiteLLMProxy
from cogni_server.embedded_pg import EmbeddedPostgres
from testsupport import ManagedProcess, free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
GRAPHS_CONFIG = ROOT / "packages" / "graphs" / "langgraph.json"
ADMIN_TOKEN = "chaos-admin-" + "k" * 32
JWT_SECRET = "chaos-jwt-" + "s" * 40
MARKUP = "2.0"
# Leases short enough that a killed instance's runs move on within seconds. The server refuses a
# drain that is not shorter than lease - heartbeat (a draining run could lose its lease).
LEASE_SECONDS, HEARTBEAT_SECONDS, DRAIN_SECONDS = 6.0, 1.0, 4.0


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed (scripts/ensure-env.sh installs it)")
    return found


@dataclass
class Topology:
    """Handles on every process of the campaign; `start()` brings all up, `close()` all down."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cogni-chaos-")))
    pg: EmbeddedPostgres | None = None
    redis: ManagedProcess | None = None
    mock: ManagedProcess | None = None
    litellm: LiteLLMProxy | None = None
    servers: list[ManagedProcess | None] = field(default_factory=lambda: [None, None])
    balancer: Balancer | None = None
    app: ManagedProcess | None = None
    billing_worker: ManagedProcess | None = None
    redis_port: int = field(default_factory=free_port)
    mock_port: int = field(default_factory=free_port)
    litellm_port: int = field(default_factory=free_port)
    server_ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    balancer_port: int = field(default_factory=free_port)
    app_port: int = field(default_factory=free_port)
    billing_worker_port: int = field(default_factory=free_port)
    logs: list[Path] = field(default_factory=list)

    # -- addresses -------------------------------------------------------------------------------
    @property
    def pg_url(self) -> str:
        assert self.pg is not None and self.pg.port is not None
        return f"postgresql://postgres@127.0.0.1:{self.pg.port}"

    def db(self, name: str) -> str:
        return f"{self.pg_url}/{name}"

    @property
    def server_db(self) -> str:
        return self.db("chaos_server")

    @property
    def app_db(self) -> str:
        return self.db("chaos_app")

    @property
    def sink_db(self) -> str:
        return self.db("chaos_sink")

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    # -- whole topology --------------------------------------------------------------------------
    def start(self) -> Topology:
        self.start_postgres()
        with psycopg.connect(self.db("postgres"), autocommit=True) as conn:
            for name in ("chaos_server", "chaos_app", "chaos_sink"):
                conn.execute(f'CREATE DATABASE "{name}"')
        self.start_redis()
        self.mock = self._spawn([sys.executable, "-m", "cogni_mock_llm", "--port", str(self.mock_port)], "mock-llm")
        self.mock.wait_http(f"http://127.0.0.1:{self.mock_port}/health", timeout=30)
        self.litellm = LiteLLMProxy(
            self.litellm_port,
            f"http://127.0.0.1:{self.mock_port}/v1",
            self.sink_db,
            workdir=self.workdir / "litellm",
        )
        self.start_litellm()
        for index in range(2):
            self.start_server(index)
        self.balancer = Balancer([f"http://127.0.0.1:{p}" for p in self.server_ports], self.balancer_port).start()
        self.start_app()
        self.start_billing_worker()
        return self

    def close(self) -> None:
        for stop in (
            self._stop_billing_worker,
            self._stop_app,
            self._stop_balancer,
            self._stop_servers,
            self._stop_litellm,
            self._stop_rest,
        ):
            try:
                stop()
            except Exception as exc:  # keep tearing down the rest
                print(f"[chaos] teardown: {type(exc).__name__}: {exc}", file=sys.stderr)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _spawn(self, args: list[str], name: str, env: dict[str, str] | None = None) -> ManagedProcess:
        proc = ManagedProcess(args, env=env, cwd=ROOT, name=f"chaos-{name}")
        self.logs.append(proc.log_path)
        return proc

    # -- Postgres --------------------------------------------------------------------------------
    def start_postgres(self) -> None:
        if self.pg is None:
            self.pg = EmbeddedPostgres()
        self.pg.start(self.workdir / "pg")

    def stop_postgres(self) -> None:
        assert self.pg is not None
        self.pg.stop()

    # -- Redis -----------------------------------------------------------------------------------
    def start_redis(self) -> None:
        args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.redis_port),
                "--save", "", "--appendonly", "no"]  # fmt: skip
        self.redis = self._spawn(args, "redis")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                import redis

                if redis.Redis(port=self.redis_port, socket_connect_timeout=0.5).ping():
                    return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer:\n{self.redis.output()}")

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.kill()

    # -- LiteLLM ---------------------------------------------------------------------------------
    def start_litellm(self) -> None:
        assert self.litellm is not None
        self.litellm.start(timeout=180)

    def kill_litellm(self) -> None:
        assert self.litellm is not None
        process, self.litellm.process = self.litellm.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    # -- servers ---------------------------------------------------------------------------------
    def server_env(self) -> dict[str, str]:
        assert self.litellm is not None
        return {
            "LANGGRAPH_DATABASE_URL": self.server_db,
            "REDIS_URL": self.redis_url,
            "COGNI_DATA_DIR": str(self.workdir / "server-data"),
            "COGNI_AUTH_MODE": "jwt",
            "COGNI_JWT_SECRET": JWT_SECRET,
            "COGNI_JWT_AUDIENCE": "cogni-agent-server",
            "LITELLM_BASE_URL": self.litellm.base_url,
            "LITELLM_API_KEY": self.litellm.master_key,
            "COGNI_LEASE_SECONDS": str(LEASE_SECONDS),
            "COGNI_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
            "COGNI_DRAIN_SECONDS": str(DRAIN_SECONDS),
            "COGNI_SWEEP_SECONDS": "1",
            "COGNI_POLL_SECONDS": "0.5",
            "COGNI_LOG_LEVEL": "warning",
        }

    def start_server(self, index: int) -> None:
        args = [sys.executable, "-m", "cogni_server", "serve", "--config", str(GRAPHS_CONFIG),
                "--port", str(self.server_ports[index])]  # fmt: skip
        proc = self._spawn(args, f"server{index}", self.server_env())
        proc.wait_http(f"http://127.0.0.1:{self.server_ports[index]}/ok", timeout=90)
        self.servers[index] = proc

    def server_index_of_pid(self, pid: int) -> int | None:
        for index, proc in enumerate(self.servers):
            if proc is not None and proc.proc.pid == pid:
                return index
        return None

    def kill_server(self, index: int) -> None:
        proc = self.servers[index]
        assert proc is not None
        proc.kill()

    def terminate_server(self, index: int, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for the drain to finish; returns the exit status."""
        proc = self.servers[index]
        assert proc is not None
        return proc.stop(timeout=timeout)

    # -- app -------------------------------------------------------------------------------------
    def app_env(self) -> dict[str, str]:
        assert self.litellm is not None and self.balancer is not None
        return {
            "DATABASE_URL": self.app_db,
            "LANGGRAPH_SERVER_URL": self.balancer.url,
            "COGNI_EXECUTOR": "server",
            "COGNI_JWT_SECRET": JWT_SECRET,
            "COGNI_ADMIN_TOKEN": ADMIN_TOKEN,
            "USER_PRICE_MARKUP_FACTOR": MARKUP,
            "LITELLM_BASE_URL": self.litellm.base_url,
            "LITELLM_API_KEY": self.litellm.master_key,
            "COGNI_SPEND_SINK_DATABASE_URL": self.sink_db,
            "COGNI_RECONCILE_DELAY_SECONDS": "1",
            "COGNI_FIRST_EVENT_TIMEOUT_SECONDS": "15",
        }

    def start_app(self) -> None:
        args = [sys.executable, "-m", "cogni_app", "serve", "--port", str(self.app_port)]
        self.app = self._spawn(args, "app", self.app_env())
        self.app.wait_http(f"{self.app_url}/healthz", timeout=90)

    def kill_app(self) -> None:
        assert self.app is not None
        self.app.kill()

    # -- billing worker --------------------------------------------------------------------------
    def billing_worker_env(self) -> dict[str, str]:
        assert self.litellm is not None
        return {
            "DATABASE_URL": self.app_db,
            "USER_PRICE_MARKUP_FACTOR": MARKUP,
            "LITELLM_BASE_URL": self.litellm.base_url,
            "LITELLM_API_KEY": self.litellm.master_key,
            "COGNI_SPEND_SINK_DATABASE_URL": self.sink_db,
        }

    def start_billing_worker(self) -> None:
        args = [sys.executable, "-m", "cogni_app", "reconcile-worker", "--metrics-port", str(self.billing_worker_port)]
        self.billing_worker = self._spawn(args, "billing-worker", self.billing_worker_env())
        self.billing_worker.wait_http(f"http://127.0.0.1:{self.billing_worker_port}/metrics", timeout=90)

    def kill_billing_worker(self) -> None:
        assert self.billing_worker is not None
        self.billing_worker.kill()

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An operator call to the app, retried while it is (re)starting."""
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.request(
                    method, self.app_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                    timeout=30, **kwargs,
                )  # fmt: skip
                if response.status_code != 503 or time.monotonic() > deadline:
                    return response
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.5)

    def wait_app_idle(self, timeout: float = 60.0) -> bool:
        """Until the app's relay has no run in flight (pump, billing and post-run reconcile done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                metrics = httpx.get(f"{self.app_url}/metrics", timeout=5).text
                if "cogni_app_relay_runs_in_flight 0.0" in metrics:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        return False

    # -- teardown --------------------------------------------------------------------------------
    def _stop_app(self) -> None:
        if self.app is not None:
            self.app.stop()

    def _stop_billing_worker(self) -> None:
        if self.billing_worker is not None:
            self.billing_worker.stop()

    def _stop_balancer(self) -> None:
        if self.balancer is not None:
            self.balancer.stop()

    def _stop_servers(self) -> None:
        for proc in self.servers:
            if proc is not None:
                proc.stop()

    def _stop_litellm(self) -> None:
        if self.litellm is not None:
            self.litellm.stop()

    def _stop_rest(self) -> None:
        for proc in (self.mock, self.redis):
            if proc is not None:
                proc.stop()
        if self.pg is not None:
            self.pg.stop()

    def healthy(self) -> None:
        """Every process answers (after a fault the campaign checks the topology is whole again)."""
        wait_for_http(f"{self.app_url}/healthz", timeout=60)
        assert self.billing_worker is not None and self.billing_worker.proc.poll() is None, "billing worker died"
        for port in self.server_ports:
            wait_for_http(f"http://127.0.0.1:{port}/ok", timeout=60)
