"""Run a real LiteLLM proxy (from its cached venv) in front of an OpenAI-compatible upstream.

Used by tests, the offline demo and the deploy docs; stdlib + psycopg only, so it runs anywhere the
sink package is installed. CLI:
`python -m cogni_litellm_sink.proxy --port 4000 --upstream http://127.0.0.1:4010/v1 --sink-database-url URL`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import cogni_litellm_sink
from cogni_litellm_sink.config import (
    DEFAULT_ALIASES,
    FREE_ALIAS,
    PAID_ALIAS,
    SINK_CALLBACK,
    ModelAlias,
    proxy_config,
    write_proxy_config,
)
from cogni_litellm_sink.keyauth import KEYS_DATABASE_URL_ENV
from cogni_litellm_sink.processes import log_tail, stop_process_group, wait_for_http_ok
from cogni_litellm_sink.venv import (
    DEFAULT_LITELLM_VERSION,
    cache_root,
    ensure_litellm_venv,
    litellm_version,
    venv_bin,
)
from cogni_litellm_sink.writer import DATABASE_URL_ENV

__all__ = [
    "DEFAULT_ALIASES",
    "DEFAULT_LITELLM_VERSION",
    "FREE_ALIAS",
    "PAID_ALIAS",
    "SINK_CALLBACK",
    "LiteLLMProxy",
    "ModelAlias",
    "cache_root",
    "ensure_litellm_venv",
    "new_master_key",
    "proxy_config",
    "start_proxy",
    "write_proxy_config",
]


def new_master_key() -> str:
    """A random master key of the form LiteLLM accepts (`sk-` + hex)."""
    return f"sk-{secrets.token_hex(24)}"


def sink_pythonpath(workdir: Path) -> str:
    """A directory holding `cogni_litellm_sink` alone, for the proxy's PYTHONPATH.

    In the workspace that is `packages/litellm-sink/src`; when the package sits in a site-packages
    (which must not leak into LiteLLM's venv) it is copied next to the config instead.
    """
    package_dir = Path(cogni_litellm_sink.__file__).resolve().parent
    if package_dir.parent.name != "site-packages":
        return str(package_dir.parent)
    target = workdir / "pythonpath"
    shutil.copytree(package_dir, target / package_dir.name, dirs_exist_ok=True)
    return str(target)


class LiteLLMProxy:
    """One LiteLLM proxy process on loopback; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        port: int,
        upstream_base_url: str,
        sink_database_url: str | None,
        master_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        version: str | None = None,
        aliases: tuple[ModelAlias, ...] = DEFAULT_ALIASES,
        workdir: Path | None = None,
        extra_env: dict[str, str] | None = None,
        keys_database_url: str | None = None,
    ) -> None:
        self.port = port
        self.keys_database_url = keys_database_url
        self.host = host
        self.upstream_base_url = upstream_base_url
        self.sink_database_url = sink_database_url
        self.master_key = master_key or new_master_key()
        self.version = version or litellm_version()
        self.aliases = aliases
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="cogni-litellm-"))
        self.extra_env = dict(extra_env or {})
        self.config_path = self.workdir / "config.yaml"
        self.log_path = self.workdir / "litellm.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None

    @property
    def base_url(self) -> str:
        """What clients use as `LITELLM_BASE_URL` (LiteLLM serves both `/` and `/v1` routes)."""
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        existing = env.get("PYTHONPATH")
        pythonpath = sink_pythonpath(self.workdir)
        env.update(
            PYTHONPATH=f"{pythonpath}{os.pathsep}{existing}" if existing else pythonpath,
            LITELLM_MASTER_KEY=self.master_key,
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_TELEMETRY="False",
            PYTHONUNBUFFERED="1",
        )
        if self.sink_database_url:
            env[DATABASE_URL_ENV] = self.sink_database_url
        if self.keys_database_url:
            env[KEYS_DATABASE_URL_ENV] = self.keys_database_url
        env.update(self.extra_env)
        return env

    def command(self, venv: Path) -> list[str]:
        """`litellm --config ... --host ... --port ...`, launched through `cogni_litellm_sink.serve`."""
        python = str(venv_bin(venv, "python"))
        return [python, "-m", "cogni_litellm_sink.serve", "--config", str(self.config_path),
                "--host", self.host, "--port", str(self.port)]  # fmt: skip

    def start(self, timeout: float = 120.0) -> LiteLLMProxy:
        """Install (once), write the config, spawn the proxy, and wait until it is live."""
        venv = ensure_litellm_venv(self.version)
        write_proxy_config(
            self.config_path, self.upstream_base_url, aliases=self.aliases, key_auth=self.keys_database_url is not None
        )
        started = time.monotonic()
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.command(venv),
                env=self.environment(),
                cwd=self.workdir,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for_http_ok(
                f"{self.base_url}/health/liveliness", self.process, self.log_path, timeout=timeout, name="litellm"
            )
        except Exception:
            self.stop()
            raise
        self.start_seconds = round(time.monotonic() - started, 2)
        return self

    def log_tail(self, chars: int = 8000) -> str:
        return log_tail(self.log_path, chars)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the proxy's process group (so the sink flushes), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is not None:
            stop_process_group(process, timeout)
        if self._own_workdir and os.environ.get("COGNI_KEEP_PROXY_LOGS") is None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LiteLLMProxy:
        return self if self.process is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_proxy(
    port: int,
    upstream_base_url: str,
    sink_database_url: str | None,
    master_key: str | None = None,
    *,
    host: str = "127.0.0.1",
    version: str | None = None,
    aliases: tuple[ModelAlias, ...] = DEFAULT_ALIASES,
    extra_env: dict[str, str] | None = None,
    timeout: float = 120.0,
    keys_database_url: str | None = None,
) -> LiteLLMProxy:
    """Start a proxy and return it live; the caller stops it (or uses it as a context manager)."""
    proxy = LiteLLMProxy(
        port,
        upstream_base_url,
        sink_database_url,
        master_key,
        host=host,
        version=version,
        aliases=aliases,
        extra_env=extra_env,
        keys_database_url=keys_database_url,
    )
    return proxy.start(timeout=timeout)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cogni_litellm_sink.proxy", description=__doc__)
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--upstream", default="http://127.0.0.1:4010/v1", help="OpenAI-compatible base URL")
    parser.add_argument("--sink-database-url", default=os.environ.get(DATABASE_URL_ENV))
    parser.add_argument("--master-key", default=os.environ.get("LITELLM_MASTER_KEY"))
    parser.add_argument(
        "--keys-database-url",
        default=os.environ.get(KEYS_DATABASE_URL_ENV),
        help="the app's database (read-only): per-account keys checked by the custom-auth hook",
    )
    parser.add_argument("--version", default=None, help=f"litellm version (default {litellm_version()})")
    parser.add_argument("--install-only", action="store_true", help="install the venv, print its path, exit")
    parser.add_argument("--print-config", action="store_true", help="print the generated config and exit")
    args = parser.parse_args(argv)
    if args.install_only:
        print(ensure_litellm_venv(args.version))
        return
    if args.print_config:
        workdir = Path(tempfile.mkdtemp(prefix="cogni-litellm-"))
        path = write_proxy_config(workdir / "config.yaml", args.upstream, key_auth=bool(args.keys_database_url))
        print(path.read_text(), end="")
        shutil.rmtree(workdir)
        return
    proxy = LiteLLMProxy(
        args.port,
        args.upstream,
        args.sink_database_url,
        args.master_key,
        host=args.host,
        version=args.version,
        keys_database_url=args.keys_database_url,
    )
    stop = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    proxy.start()
    print(f"LITELLM_BASE_URL={proxy.base_url}", flush=True)
    print(f"LITELLM_API_KEY={proxy.master_key}", flush=True)
    print(f"# logs: {proxy.log_path}", flush=True)
    try:
        while not stop and proxy.process is not None and proxy.process.poll() is None:
            time.sleep(0.5)
    finally:
        proxy.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
