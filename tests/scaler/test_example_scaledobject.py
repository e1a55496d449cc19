"""The example ScaledObject is valid for KEDA's CRD and says what docs/scaler.md says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from scaler.metadata import parse_metadata
from scaler.service import ScalerService
from tests.scaler.fakes import FakeBroker, FakeStore

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "manifests" / "examples" / "scaledobject.yaml"
SCHEMA = ROOT / "manifests" / "schemas" / "keda.sh" / "scaledobject_v1alpha1.json"


def load() -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(document, dict)
    return document


def test_example_validates_against_kedas_crd_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(load(), schema)


def test_example_trigger_metadata_parses_and_resolves() -> None:
    spec = load()["spec"]
    [trigger] = spec["triggers"]
    assert trigger["type"] in ("external", "external-push")
    assert trigger["metricType"] == "AverageValue"
    parsed = parse_metadata(trigger["metadata"])
    assert parsed.config.max_replicas == spec["maxReplicaCount"]
    assert parsed.config.min_replicas == spec["minReplicaCount"]
    service = ScalerService({parsed.broker: FakeBroker()}, FakeStore())
    target = service.resolve(
        load()["metadata"]["namespace"], load()["metadata"]["name"], trigger["metadata"]
    )
    assert target.policy.metric_target == 1.0


def test_example_hands_stabilization_to_the_policy_and_drops_the_tolerance() -> None:
    behavior = load()["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert behavior["scaleDown"]["tolerance"] == 0
    assert behavior["scaleUp"]["tolerance"] == 0
