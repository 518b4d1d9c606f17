"""Prometheus rules and the Grafana dashboard use only metrics of the documented contract, and the
contract's "exists" rows are metrics the code really registers."""

from __future__ import annotations

import importlib
import json
import re

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from tests.deploy.deployfiles import DEPLOY, METRIC_RE, REQUIRED_ALERTS, ROOT, base_name, load_yaml, metric_contract


def test_metric_contract_is_documented() -> None:
    contract = metric_contract()
    assert len(contract) >= 15
    assert set(contract.values()) <= {"exists", "proposed"}


def test_existing_metrics_are_registered_by_the_code() -> None:
    """Every contract row marked `exists` is a metric name some package registers."""
    sources = "\n".join(p.read_text() for p in ROOT.glob("packages/*/src/**/*.py"))
    for metric, status in metric_contract().items():
        if status != "exists":
            continue
        stem = metric.removesuffix("_total")
        assert f'"{stem}"' in sources or f'"{metric}"' in sources, f"{metric} is marked exists but not found"


# Every module that registers a metric (importing them registers on the default registry).
METRIC_MODULES = (
    "cogni_server.metrics",
    "cogni_app.metrics",
    "cogni_app.relay",
    "cogni_app.api.metrics",
    "cogni_app.executors.metrics",
)


def contract_rows() -> dict[str, tuple[str, set[str]]]:
    """metric -> (type, label names), from the same table as `metric_contract`."""
    rows = {}
    for line in (ROOT / "docs" / "deployment.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].startswith("`cogni_"):
            rows[cells[0].strip("`")] = (cells[1], set(re.findall(r"`([a-z_]+)`", cells[2])))
    return rows


def test_existing_metrics_are_live_with_the_documented_type_and_labels() -> None:
    """Stronger than the text search: each `exists` row is in the registry, as documented."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    collectors = REGISTRY._names_to_collectors
    contract = metric_contract()
    for metric, (kind, labels) in contract_rows().items():
        if contract[metric] != "exists":
            continue
        collector = collectors.get(metric)
        assert isinstance(collector, MetricWrapperBase), f"{metric} is marked exists but is not registered"
        described = {family.name: family.type for family in collector.describe()}
        assert described.get(metric.removesuffix("_total")) == kind, f"{metric}: {described}, documented {kind}"
        assert set(collector._labelnames) == labels, f"{metric}: labels differ from the contract"


def test_queue_and_reconciler_metrics_exist() -> None:
    """The metrics the queue and reconciler alerts need are registered, not proposed."""
    contract = metric_contract()
    for metric in ("cogni_run_queue_depth", "cogni_run_queue_oldest_age_seconds", "cogni_reconciler_errors_total"):
        assert contract[metric] == "exists", metric


def test_every_alert_uses_existing_metrics_only() -> None:
    """An alert on a metric nobody exposes can never fire; no alert may depend on a proposed one."""
    contract = metric_contract()
    rules_doc = load_yaml(DEPLOY / "prometheus" / "rules.yaml")
    for group in rules_doc["groups"]:
        for rule in group["rules"]:
            for metric in METRIC_RE.findall(rule["expr"]):
                assert contract[base_name(metric)] == "exists", f"{rule['alert']} uses proposed {metric}"


def test_prometheus_rules_are_well_formed_and_use_the_contract() -> None:
    rules_doc = load_yaml(DEPLOY / "prometheus" / "rules.yaml")
    contract = metric_contract()
    names: list[str] = []
    for group in rules_doc["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            names.append(rule["alert"])
            expr = rule["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), rule["alert"]
            assert re.fullmatch(r"\d+[smh]", str(rule.get("for", "0m"))), rule["alert"]
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert rule["annotations"]["summary"]
            for metric in METRIC_RE.findall(expr):
                assert base_name(metric) in contract, f"{rule['alert']} uses {metric}, not in the contract"
    assert len(names) == len(set(names)), "alert names are unique"
    assert set(names) >= REQUIRED_ALERTS


def test_prometheus_scrape_jobs_match_the_rules() -> None:
    scrape = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    rules_text = (DEPLOY / "prometheus" / "rules.yaml").read_text()
    assert set(re.findall(r'job="([a-z-]+)"', rules_text)) <= jobs


def test_grafana_dashboard_panels_query_contract_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "cogni.json").read_text())
    contract = metric_contract()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            for metric in METRIC_RE.findall(target["expr"]):
                assert base_name(metric) in contract, f"panel {panel['title']!r} uses {metric}"
                queried.add(base_name(metric))
    assert {"cogni_runs_finished_total", "cogni_billing_receipts_total", "cogni_unbilled_calls"} <= queried
    assert dashboard["templating"]["list"][0]["type"] == "datasource"


def test_global_queue_gauges_are_never_summed_across_instances() -> None:
    """Every server process reports the same global queue figures: summing them multiplies by replicas."""
    texts = [
        (DEPLOY / "prometheus" / "rules.yaml").read_text(),
        (DEPLOY / "grafana" / "cogni.json").read_text(),
    ]
    for text in texts:
        for metric in ("cogni_run_queue_depth", "cogni_run_queue_oldest_age_seconds"):
            assert not re.search(rf"sum\s*(by\s*\([^)]*\)\s*)?\(\s*{metric}", text), metric
