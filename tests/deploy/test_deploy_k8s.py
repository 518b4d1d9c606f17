"""Kubernetes manifests (kustomize base and offline overlay): probes, ports, selectors, PDBs, HPAs, secrets."""

from __future__ import annotations

import pytest

from tests.deploy.deployfiles import DEPLOY, K8S_PORTS, REQUIRED_ENV, by_kind, k8s_docs


@pytest.mark.parametrize("overlay", ["base", "offline"])
def test_k8s_deployments_have_probes_resources_and_run_non_root(overlay: str) -> None:
    docs = k8s_docs(overlay)
    deployments = by_kind(docs, "Deployment")
    expected = set(K8S_PORTS) | ({"cogni-mock-llm"} if overlay == "offline" else set())
    assert set(deployments) == expected
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items(), name
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        (container,) = pod["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] and container["readinessProbe"]["httpGet"]["path"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
        assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, name


def test_k8s_server_probes_ok_and_health_on_the_blueprint_ports() -> None:
    deployments = by_kind(k8s_docs("base"), "Deployment")
    for name, port in K8S_PORTS.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert [p["containerPort"] for p in container["ports"]] == [port], name
        args = container["args"]
        if "--port" in args:
            assert args[args.index("--port") + 1] == str(port)
    for name in ("cogni-server", "cogni-worker"):
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/ok"
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    server_args = deployments["cogni-server"]["spec"]["template"]["spec"]["containers"][0]["args"]
    worker_args = deployments["cogni-worker"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--no-workers" in server_args and "--workers-only" in worker_args


def test_k8s_services_route_to_the_deployments() -> None:
    docs = k8s_docs("base")
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    assert set(services) == {"cogni-server", "cogni-app", "cogni-litellm"}
    for name, service in services.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name
        (port,) = service["spec"]["ports"]
        assert port["port"] == K8S_PORTS[name], name


def test_k8s_pdbs_and_hpa_target_real_deployments() -> None:
    docs = k8s_docs("base")
    deployments = by_kind(docs, "Deployment")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert pdbs, "at least one PodDisruptionBudget"
    for name, pdb in pdbs.items():
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(
            selector.items() <= d["spec"]["template"]["metadata"]["labels"].items() for d in deployments.values()
        ), name
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert "cogni-server" in {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()}
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_k8s_env_covers_every_component_and_secrets_are_placeholders() -> None:
    docs = k8s_docs("base")
    config = by_kind(docs, "ConfigMap")["cogni-config"]["data"]
    secret = by_kind(docs, "Secret")["cogni-secrets"]["stringData"]
    available = set(config) | set(secret)
    for component, required in REQUIRED_ENV.items():
        assert not required - available, f"{component} lacks {sorted(required - available)}"
    for key, value in secret.items():
        assert "REPLACE_ME" in value, f"Secret {key} must be a placeholder, never a real value"
    assert config["LITELLM_BASE_URL"].endswith(":4000") and config["LANGGRAPH_SERVER_URL"].endswith(":8123")


def test_k8s_litellm_configmap_is_the_deployed_litellm_config() -> None:
    configmap = by_kind(k8s_docs("base"), "ConfigMap")["cogni-litellm-config"]
    assert configmap["data"]["config.yaml"] == (DEPLOY / "litellm" / "config.yaml").read_text()


def test_k8s_offline_overlay_points_litellm_at_the_mock() -> None:
    config = by_kind(k8s_docs("offline"), "ConfigMap")["cogni-config"]["data"]
    assert config["LITELLM_UPSTREAM_BASE_URL"] == "http://cogni-mock-llm:4010/v1"
