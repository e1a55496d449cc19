"""Alerts and dashboard, checked by Prometheus' own promtool and against the metrics that exist.

The PrometheusRules' groups (base and the rendered per-model SLO rules) are written to a plain rules file in a temp dir; ``promtool check
rules`` lints them and ``promtool test rules`` runs alerts_test.yaml (a firing and a quiet case
for every alert). Every metric a rule or a dashboard panel reads must be one the stack exports:
the scaler's (scaler/metrics.py), dcgm-exporter's (the counters file in the manifest),
kube-state-metrics' or a recording rule's.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import Metric

from scaler.metrics import ScalerMetrics
from tests.conftest import require_binary
from tests.manifests.conftest import MANIFESTS
from tests.manifests.kustomize import load_documents

MONITORING = MANIFESTS / "base" / "monitoring"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")
KUBE_STATE_METRICS = frozenset({"kube_deployment_status_replicas_ready"})
METRIC = re.compile(r"\b(depthscale_[a-z_]+|depthscale:[a-z_:]+|DCGM_FI_[A-Z_]+|kube_[a-z_]+)\b")


RULE_FILES = (MONITORING / "prometheusrule.yaml", MANIFESTS / "models" / "slo-rules.yaml")


def _rule_groups() -> list[dict[str, Any]]:
    """The groups of the base PrometheusRule and of the rendered per-model SLO rules."""
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        [rule] = load_documents(path)
        assert rule["kind"] == "PrometheusRule"
        groups += rule["spec"]["groups"]
    return groups


def _rules() -> list[dict[str, Any]]:
    return [r for g in _rule_groups() for r in g["rules"]]


def _alert_names() -> list[str]:
    return [r["alert"] for r in _rules() if "alert" in r]


def _dashboard() -> dict[str, Any]:
    [config_map] = load_documents(MONITORING / "dashboard.yaml")
    dashboard: dict[str, Any] = json.loads(config_map["data"]["depthscale.json"])
    return dashboard


def _dashboard_queries() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]


def _sample_names(metric: Metric) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {metric.name + s for s in suffixes.get(metric.type, ("",))}


def _exported_metrics() -> set[str]:
    scaler = {n for m in ScalerMetrics().registry.collect() for n in _sample_names(m)}
    documents = load_documents(MONITORING / "dcgm-exporter.yaml")
    [counters] = [d for d in documents if d["metadata"]["name"] == "dcgm-exporter-counters"]
    dcgm = {
        line.split(",")[0].strip()
        for line in counters["data"]["counters.csv"].splitlines()
        if line.strip() and not line.startswith("#")
    }
    recorded = {r["record"] for r in _rules() if "record" in r}
    return scaler | dcgm | recorded | KUBE_STATE_METRICS


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _rule_groups()}))
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    return tmp_path


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.tools
def test_promtool_check_rules(rules_dir: Path) -> None:
    result = _promtool("check", "rules", "rules.yaml", cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


@pytest.mark.tools
def test_promtool_test_rules(rules_dir: Path) -> None:
    result = _promtool("test", "rules", ALERT_TESTS.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.tools
def test_promtool_test_rules_fails_when_an_alert_changes(rules_dir: Path) -> None:
    # The unit tests bite: raising the vLLM reservation threshold breaks its firing case.
    text = (rules_dir / "rules.yaml").read_text()
    (rules_dir / "rules.yaml").write_text(
        text.replace('{container="vllm"} > 0.95', '{container="vllm"} > 0.97')
    )
    result = _promtool("test", "rules", ALERT_TESTS.name, cwd=rules_dir)
    assert result.returncode != 0
    assert "VLLMGPUMemoryAboveReservation" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for alert in _alert_names():
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in mine), f"{alert}: no firing case"
        assert any(not c["exp_alerts"] for c in mine), f"{alert}: no quiet case"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for rule in (r for r in _rules() if "alert" in r):
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_no_raw_memory_threshold_on_vllm_gpus() -> None:
    # A plain "used > 85 %" fires on every healthy vLLM GPU (gpu_memory_utilization 0.9): every
    # rule with the seed's 0.85 must exclude vLLM's GPUs.
    for rule in (r for r in _rules() if "alert" in r):
        if re.search(r">\s*0\.85\b", rule["expr"]):
            assert 'container!="vllm"' in rule["expr"], rule["alert"]


def test_rules_and_dashboard_read_only_exported_metrics() -> None:
    exported = _exported_metrics()
    used = {m for r in _rules() for m in METRIC.findall(r["expr"])}
    used |= {m for q in _dashboard_queries() for m in METRIC.findall(q)}
    assert used
    missing = sorted(used - exported)
    assert not missing, f"no exporter provides: {missing}"


def test_dashboard_covers_the_required_views() -> None:
    queries = " ".join(_dashboard_queries())
    for metric in (
        "depthscale_pending_tasks",  # queue depth
        "depthscale_desired_replicas",  # desired ...
        "kube_deployment_status_replicas_ready",  # ... vs ready replicas
        "DCGM_FI_DEV_FB_USED",  # GPU memory
        "DCGM_FI_DEV_GPU_UTIL",  # utilization
        "DCGM_FI_PROF_PCIE_TX_BYTES",  # PCIe throughput
    ):
        assert metric in queries, metric


@pytest.mark.tools
def test_dashboard_queries_parse(tmp_path: Path) -> None:
    # Grafana's variables become what they stand for, then promtool parses each query.
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": q.replace("$__rate_interval", "5m").replace("$model", ".*"),
        }
        for i, q in enumerate(_dashboard_queries())
    ]
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    result = _promtool("check", "rules", "dashboard.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_jobs_are_services_a_service_monitor_scrapes() -> None:
    # Prometheus Operator names a ServiceMonitor's job after the Service it scrapes.
    objects = load_documents(MANIFESTS / "base" / "scaler" / "service.yaml")
    objects += load_documents(MANIFESTS / "base" / "scaler" / "servicemonitor.yaml")
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    scraped = {
        s["metadata"]["name"]
        for s in objects
        if s["kind"] == "Service"
        for m in monitors
        if all(
            s["metadata"]["labels"].get(k) == v
            for k, v in m["spec"]["selector"]["matchLabels"].items()
        )
    }
    jobs = {j for r in _rules() for j in re.findall(r'job="([^"]+)"', r["expr"])}
    assert jobs
    assert jobs <= scraped
