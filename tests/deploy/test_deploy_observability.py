"""Prometheus rules and the Grafana dashboard use only metrics of the documented contract, and the
contract's "exists" rows are metrics the code really registers."""

from __future__ import annotations

import json
import re

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
