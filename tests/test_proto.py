"""The generated protobuf code matches proto/externalscaler.proto, and the proto matches KEDA's wire
contract (kedacore/keda pkg/scalers/externalscaler/externalscaler.proto, v2.20)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GENERATED = (
    "externalscaler_pb2.py",
    "externalscaler_pb2.pyi",
    "externalscaler_pb2_grpc.py",
    "externalscaler_pb2_grpc.pyi",
)

# Lines that only stamp the generator's version; a newer grpcio-tools changes them without
# changing what the code means, so they are compared with the numbers blanked out.
_VERSION_STAMP = re.compile(
    r"^(# Protobuf Python Version: |GRPC_GENERATED_VERSION = |    \d+,$)(.*)$", re.MULTILINE
)


def _normalise(text: str) -> str:
    return _VERSION_STAMP.sub(lambda m: m.group(1) + "<version>", text)


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )
    stale = [
        name
        for name in GENERATED
        if _normalise((tmp_path / "proto" / name).read_text())
        != _normalise((ROOT / "proto" / name).read_text())
    ]
    assert not stale, f"regenerate with scripts/gen_proto.sh: {stale} differ from the .proto"


# KEDA's field numbers, written down from its .proto: they are what travels on the wire.
WIRE_FIELDS = {
    "ScaledObjectRef": {"name": 1, "namespace": 2, "scalerMetadata": 3},
    "IsActiveResponse": {"result": 1},
    "GetMetricSpecResponse": {"metricSpecs": 1},
    "MetricSpec": {"metricName": 1, "targetSize": 2, "targetSizeFloat": 3},
    "GetMetricsRequest": {"scaledObjectRef": 1, "metricName": 2},
    "GetMetricsResponse": {"metricValues": 1},
    "MetricValue": {"metricName": 1, "metricValue": 2, "metricValueFloat": 3},
}


@pytest.mark.parametrize("message", sorted(WIRE_FIELDS))
def test_message_fields_match_keda(message: str) -> None:
    from proto import externalscaler_pb2

    descriptor = externalscaler_pb2.DESCRIPTOR.message_types_by_name[message]
    assert descriptor.full_name == f"externalscaler.{message}"
    assert {f.name: f.number for f in descriptor.fields} == WIRE_FIELDS[message]


def test_service_methods_match_keda() -> None:
    from proto import externalscaler_pb2

    service = externalscaler_pb2.DESCRIPTOR.services_by_name["ExternalScaler"]
    assert service.full_name == "externalscaler.ExternalScaler"
    methods = {
        m.name: (m.input_type.name, m.output_type.name, m.server_streaming) for m in service.methods
    }
    assert methods == {
        "IsActive": ("ScaledObjectRef", "IsActiveResponse", False),
        "StreamIsActive": ("ScaledObjectRef", "IsActiveResponse", True),
        "GetMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", False),
        "GetMetrics": ("GetMetricsRequest", "GetMetricsResponse", False),
        "StreamMetricSpec": ("ScaledObjectRef", "GetMetricSpecResponse", True),
    }
