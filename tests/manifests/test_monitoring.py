"""Alerts and dashboard, checked by Prometheus' own promtool and against the metrics that exist.

The PrometheusRules' groups (base, and the rendered per-model SLO and GPU-memory rules) are
written to a plain rules file in a temp dir; ``promtool check rules`` lints them and ``promtool
test rules`` runs alerts_test.yaml (a firing and a quiet case for every alert). Every metric a
rule or a dashboard panel reads must be one the stack exports: the scaler's (scaler/metrics.py),
dcgm-exporter's (the counters file in the manifest), vLLM's (VLLM_METRICS below, from vLLM's
source), kube-state-metrics' or a recording rule's.
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
KUBE_STATE_METRICS = frozenset({"kube_deployment_status_replicas_ready", "kube_node_info"})
# What a vLLM replica's /metrics serves that the rules and the dashboard read, as scraped
# (counters with _total, histograms as _bucket/_sum/_count): vllm/v1/metrics/loggers.py
# (PrometheusStatLogger) and the API server's HTTP instrumentation (docs/design/metrics.md).
VLLM_METRICS = frozenset(
    {
        "vllm:kv_cache_usage_perc",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:num_preemptions_total",
        "vllm:generation_tokens_total",
        "vllm:prompt_tokens_total",
        "vllm:request_success_total",
        *(
            f"{histogram}{suffix}"
            for histogram in (
                "vllm:time_to_first_token_seconds",
                "vllm:inter_token_latency_seconds",
                "vllm:e2e_request_latency_seconds",
            )
            for suffix in ("_bucket", "_sum", "_count")
        ),
        "http_requests_total",
    }
)
METRIC = re.compile(
    r"\b(depthscale_[a-z_]+|depthscale:[a-z_:0-9]+|DCGM_FI_[A-Z_]+|kube_[a-z_]+"
    r"|vllm:[a-z_]+|http_[a-z_]+)"
)

RULE_FILES = (
    MONITORING / "prometheusrule.yaml",
    MANIFESTS / "models" / "slo-rules.yaml",
    MANIFESTS / "models" / "monitoring.yaml",
)


def _rule_groups() -> list[dict[str, Any]]:
    """The groups of the base PrometheusRule and of the rendered per-model rules."""
    groups: list[dict[str, Any]] = []
    for path in RULE_FILES:
        rules = [d for d in load_documents(path) if d["kind"] == "PrometheusRule"]
        assert rules, path
        groups += [g for rule in rules for g in rule["spec"]["groups"]]
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
    return scaler | dcgm | recorded | KUBE_STATE_METRICS | VLLM_METRICS


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
@pytest.mark.parametrize(
    ("rule", "old", "new", "alert"),
    [
        # Raising the vLLM reservation threshold breaks its firing case.
        ("VLLMGPUMemoryAboveReservation", "> 0.95", "> 0.97", "VLLMGPUMemoryAboveReservation"),
        # An XID alert without changes() fires for ever: the "past event is quiet" case breaks.
        (
            "GPUXidError",
            "changes(depthscale:gpu_last_xid:code[15m]) > 0",
            "vector(1)",
            "GPUXidError",
        ),
        # Fatal XIDs that do not outlive a later application XID break "48 stays after 13".
        (
            "GPUXidFatal",
            "max_over_time(depthscale:gpu_fatal_xid:code[1d])",
            "depthscale:gpu_fatal_xid:code",
            "GPUXidFatal",
        ),
        # Without the reset check, a new application XID after the reset brings the fatal back.
        (
            "GPUXidFatal",
            "max_over_time(depthscale:gpu_xid_cleared:timestamp_seconds[1d])",
            "(0 * max_over_time(depthscale:gpu_xid_cleared:timestamp_seconds[1d]))",
            "GPUXidFatal",
        ),
        # Without the node check, a fatal XID pages on for a day after its node is gone.
        (
            "GPUXidFatal",
            'and on (Hostname)\nlabel_replace(kube_node_info, "Hostname", "$1", "node", "(.+)")',
            "",
            "GPUXidFatal",
        ),
        # Counting probes (any handler) dilutes the 5xx share under the threshold.
        ("depthscale:vllm_http_5xx:ratio_rate5m", 'handler=~"/v1/.+", ', "", "VLLMServerErrors"),
    ],
    ids=[
        "memory-threshold",
        "xid-changes",
        "xid-fatal-sticky",
        "xid-fatal-reset",
        "xid-fatal-node-gone",
        "5xx-handlers",
    ],
)
def test_promtool_test_rules_fails_when_a_rule_changes(
    rules_dir: Path, rule: str, old: str, new: str, alert: str
) -> None:
    # The unit tests bite: each change to a rule breaks one of its cases.
    groups = _rule_groups()
    changed = 0
    for r in (r for g in groups for r in g["rules"]):
        if rule in (r.get("alert"), r.get("record")):
            assert old in r["expr"], (rule, r["expr"])
            r["expr"] = r["expr"].replace(old, new)
            changed += 1
    assert changed
    (rules_dir / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    result = _promtool("test", "rules", ALERT_TESTS.name, cwd=rules_dir)
    assert result.returncode != 0
    assert alert in result.stdout + result.stderr


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
        "vllm:kv_cache_usage_perc",  # vLLM's own view: KV cache,
        "vllm:num_preemptions_total",  # preemptions,
        "vllm:time_to_first_token_seconds_bucket",  # TTFT,
        "vllm:inter_token_latency_seconds_bucket",  # time per output token,
        'status="5xx"',  # and the API's server errors
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


def test_fatal_xids_are_the_catalogs_reset_and_reboot_codes() -> None:
    # NVIDIA's Xid catalog: 79 (fallen off the bus) needs a node reboot; 46, 48, 64, 95, 119 and
    # 120 a GPU reset. 13, 31 and 94 (a contained ECC error) only need the application restarted;
    # 43, 63 and 92 need nothing: paging on them would drain healthy nodes.
    [rule] = [r for r in _rules() if r.get("record") == "depthscale:gpu_fatal_xid:code"]
    found = re.search(r'err_code=~"([0-9|]+)"', rule["expr"])
    assert found, rule["expr"]
    fatal = {int(code) for code in found[1].split("|")}
    assert {46, 48, 64, 79, 95, 119, 120} <= fatal
    assert not {13, 31, 43, 63, 92, 94} & fatal
