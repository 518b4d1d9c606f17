"""Shared constants and loaders for the deploy tests (the blueprint's ports, env vars per service)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# The blueprint's "Processes and ports" table.
PORTS = {"server": 8123, "app": 8080, "litellm": 4000, "mock-llm": 4010, "postgres": 5432, "redis": 6379}
IMAGE_PORTS = {"server": 8123, "app": 8080, "litellm": 4000, "mock-llm": 4010}
K8S_PORTS = {
    "cogni-server": 8123,
    "cogni-worker": 8123,
    "cogni-app": 8080,
    "cogni-billing-worker": 9464,
    "cogni-litellm": 4000,
}
REQUIRED_ENV = {
    "server": {
        "LANGGRAPH_DATABASE_URL",
        "REDIS_URL",
        "COGNI_AUTH_MODE",
        "LITELLM_BASE_URL",
        "LITELLM_API_KEY",
        "COGNI_SECRETS_KEY",
    },
    "worker": {"LANGGRAPH_DATABASE_URL", "REDIS_URL", "LITELLM_BASE_URL", "LITELLM_API_KEY", "COGNI_SECRETS_KEY"},
    "app": {
        "DATABASE_URL",
        "LANGGRAPH_SERVER_URL",
        "LITELLM_BASE_URL",
        "LITELLM_API_KEY",
        "USER_PRICE_MARKUP_FACTOR",
        "COGNI_JWT_SECRET",
        "COGNI_SPEND_SINK_DATABASE_URL",
        "COGNI_LLM_KEY_SECRET",
    },
    "litellm": {
        "LITELLM_MASTER_KEY",
        "COGNI_SPEND_SINK_DATABASE_URL",
        "LITELLM_UPSTREAM_BASE_URL",
        "COGNI_LLM_KEYS_DATABASE_URL",
    },
    "billing-worker": {
        "DATABASE_URL",
        "LITELLM_BASE_URL",
        "LITELLM_API_KEY",
        "USER_PRICE_MARKUP_FACTOR",
        "COGNI_SPEND_SINK_DATABASE_URL",
    },
}
REQUIRED_ALERTS = {
    "CogniServerDown",
    "CogniWorkersDown",
    "CogniRunFailureRateHigh",
    "CogniRunQueueBacklog",
    "CogniRunQueueStale",
    "CogniRunLeaseSweeps",
    "CogniBillingUnderbilled",
    "CogniUnbilledCalls",
    "CogniBillingLagHigh",
    "CogniReconcilerErrors",
}
METRIC_RE = re.compile(r"\bcogni_[a-z0-9_]+")
SECRET_NAME_RE = re.compile(r"(PASSWORD|SECRET|MASTER_KEY|API_KEY|TOKEN)")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_docs(overlay: str) -> list[dict[str, Any]]:
    """Every object a kustomization's resources list (recursively), patches applied naively."""
    base = DEPLOY / "k8s" / overlay
    kustomization = load_yaml(base / "kustomization.yaml")
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = (base / resource).resolve()
        assert path.exists(), f"{overlay}: missing resource {resource}"
        docs.extend(k8s_docs(str(path.relative_to(DEPLOY / "k8s"))) if path.is_dir() else load_all(path))
    for patch in kustomization.get("patches") or []:
        patch_doc = load_yaml(base / patch["path"])
        target = next(
            d for d in docs if (d["kind"], d["metadata"]["name"]) == (patch_doc["kind"], patch_doc["metadata"]["name"])
        )
        target.setdefault("data", {}).update(patch_doc.get("data", {}))
    return docs


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def metric_contract() -> dict[str, str]:
    """metric -> status ("exists" or "proposed"), from the table in docs/deployment.md."""
    rows = {}
    for line in (ROOT / "docs" / "deployment.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].startswith("`cogni_"):
            rows[cells[0].strip("`")] = cells[4].split()[0].lower()
    return rows


def base_name(metric: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", metric)
