"""Dockerfiles, compose and the LiteLLM config: consistent with each other, the blueprint and the code.

There is no container engine on these machines, so the Dockerfiles are linted with hadolint and the
YAML is parsed and cross-checked (ports, health checks, dependencies, env vars, mounts, secrets).
Kubernetes: test_deploy_k8s.py; alerts, dashboard and metric contract: test_deploy_observability.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.deployfiles import (
    DEPLOY,
    IMAGE_PORTS,
    PORTS,
    REQUIRED_ENV,
    ROOT,
    SECRET_NAME_RE,
    load_yaml,
)

DOCKERFILES = sorted((DEPLOY / "docker").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


# --- Dockerfiles -------------------------------------------------------------------------------


def test_there_is_a_dockerfile_per_image() -> None:
    assert {p.name.removesuffix(".Dockerfile") for p in DOCKERFILES} == set(IMAGE_PORTS)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints(tmp_path: Path) -> None:
    """The lint above can fail: an unpinned base image and apt install are reported."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3008" in result.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multistage_uv_nonroot_with_healthcheck(dockerfile: Path) -> None:
    name = dockerfile.name.removesuffix(".Dockerfile")
    lines = [line.strip() for line in dockerfile.read_text().splitlines()]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) >= 2, "multi-stage: a build stage and a slim runtime stage"
    runtime = lines[lines.index(stages[-1]) :]
    assert any(line.startswith("RUN ") and "uv==" in line for line in lines), "uv pinned in the build stage"
    assert any("uv sync --frozen" in line or "uv pip install" in line for line in lines)
    users = [line.split()[1] for line in runtime if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runtime runs as a non-root user"
    assert f"EXPOSE {IMAGE_PORTS[name]}" in runtime
    health = " ".join(line for line in runtime if "HEALTHCHECK" in line or "CMD [" in line)
    assert f"127.0.0.1:{IMAGE_PORTS[name]}/" in health, "healthcheck probes the service's own port"
    assert (dockerfile.parent / f"{dockerfile.name}.dockerignore").exists()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_copies_files_that_exist_and_are_not_ignored(dockerfile: Path) -> None:
    ignored = [
        line.strip()
        for line in (dockerfile.parent / f"{dockerfile.name}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = [line.split() for line in dockerfile.read_text().splitlines() if line.startswith("COPY ")]
    sources = [s for parts in copies if not any(p.startswith("--from") for p in parts) for s in parts[1:-1]]
    sources = [s for s in sources if not s.startswith("--")]
    assert sources, "copies something from the build context"
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"
        assert not any(source == pat or source.startswith(pat + "/") for pat in ignored), f"{source} is ignored"


def test_litellm_image_pins_the_same_version_as_the_tests() -> None:
    from cogni_litellm_sink.venv import DEFAULT_LITELLM_VERSION

    text = (DEPLOY / "docker" / "litellm.Dockerfile").read_text()
    assert f"ARG LITELLM_VERSION={DEFAULT_LITELLM_VERSION}" in text
    assert '"litellm[proxy]==${LITELLM_VERSION}"' in text


# --- compose -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(DEPLOY / "compose.yaml")
    assert isinstance(data, dict)
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "environment as a mapping"
    return {str(k): str(v) for k, v in env.items()}


def _published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for entry in service.get("ports") or []:
        host_ip, host_port, container_port = str(entry).split(":")
        out.append((host_ip, int(host_port), int(container_port)))
    return out


def test_compose_has_the_topology(compose: dict[str, Any]) -> None:
    services = compose["services"]
    core = {name for name, svc in services.items() if not svc.get("profiles")}
    assert core == {"postgres", "redis", "mock-llm", "litellm", "server", "worker", "app", "billing-worker"}


def test_compose_ports_match_the_blueprint_and_bind_loopback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, port in PORTS.items():
        assert ("127.0.0.1", port, port) in _published(services[name]), name
    for name, service in services.items():
        assert all(ip == "127.0.0.1" for ip, _, _ in _published(service)), f"{name} publishes beyond loopback"
    assert not services["worker"].get("ports"), "workers publish nothing (scale with --scale worker=N)"
    assert not services["billing-worker"].get("ports"), "the billing worker publishes nothing"


def test_compose_services_have_healthchecks_and_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if service.get("profiles"):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep} must wait for healthy"
    for name, port in IMAGE_PORTS.items():
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in probe, name


def test_compose_builds_from_the_dockerfiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in IMAGE_PORTS:
        build = services[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().exists(), name
    assert services["worker"]["image"] == services["server"]["image"], "worker reuses the server image"
    assert services["billing-worker"]["image"] == services["app"]["image"], "the billing worker is the app image"
    assert services["billing-worker"]["command"][:2] == ["cogni-app", "reconcile-worker"]


def test_compose_splits_api_and_workers_with_the_cli_flags(compose: dict[str, Any]) -> None:
    services = compose["services"]
    server_cmd, worker_cmd = services["server"]["command"], services["worker"]["command"]
    assert server_cmd[:2] == worker_cmd[:2] == ["cogni-server", "serve"]
    assert "--no-workers" in server_cmd and "--workers-only" in worker_cmd
    for cmd in (server_cmd, worker_cmd):
        assert cmd[cmd.index("--port") + 1] == str(PORTS["server"])


def test_compose_env_vars_per_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, required in REQUIRED_ENV.items():
        missing = required - set(_env(services[name]))
        assert not missing, f"{name} lacks {sorted(missing)}"


def test_compose_urls_point_at_services_and_their_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    url_re = re.compile(r"^(?:https?|postgresql|redis)://(?:[^@]*@)?([a-z0-9-]+):(\d+)")
    seen = 0
    for name, service in services.items():
        for key, value in _env(service).items():
            match = url_re.match(value)
            if not match:
                continue
            host, port = match.group(1), int(match.group(2))
            assert host in services, f"{name}.{key} points at unknown host {host}"
            assert PORTS.get(host) == port, f"{name}.{key} uses {host}:{port}, expected {PORTS.get(host)}"
            seen += 1
    assert seen >= 10


def test_compose_has_no_literal_secrets(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in _env(service).items():
            if SECRET_NAME_RE.search(key) and value != "mock-upstream-key":
                assert value.startswith("${") and ":?" in value, f"{name}.{key} must come from deploy/.env"


def test_compose_mounts_existing_files(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"


# --- LiteLLM config ----------------------------------------------------------------------------


def test_litellm_config_matches_what_the_tests_generate() -> None:
    from cogni_litellm_sink.config import SINK_CALLBACK, proxy_config

    deployed = load_yaml(DEPLOY / "litellm" / "config.yaml")
    generated = proxy_config("http://upstream/v1", key_auth=True)  # per-account keys on (docs/compliance.md)
    assert deployed["litellm_settings"]["callbacks"] == [SINK_CALLBACK]
    assert deployed["litellm_settings"]["num_retries"] == 0
    assert deployed["router_settings"] == generated["router_settings"]
    assert deployed["general_settings"] == generated["general_settings"]

    def shape(entries: list[dict[str, Any]]) -> dict[str, Any]:
        out = {}
        for entry in entries:
            params = {k: v for k, v in entry["litellm_params"].items() if k not in ("api_base", "api_key")}
            out[entry["model_name"]] = (params, entry["model_info"])
        return out

    assert shape(deployed["model_list"]) == shape(generated["model_list"])
    for entry in deployed["model_list"]:
        assert entry["litellm_params"]["api_base"] == "os.environ/LITELLM_UPSTREAM_BASE_URL"
        assert entry["litellm_params"]["api_key"] == "os.environ/LITELLM_UPSTREAM_API_KEY"
