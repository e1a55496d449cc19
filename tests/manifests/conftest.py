"""Built overlays, shared by the manifest checks (built once per session: pure file reading)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from tests.manifests.kustomize import Obj, build

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = ("eks-karpenter", "gke")


@cache
def built(name: str) -> list[Obj]:
    """The objects of overlay ``name``, built once (callers must not mutate them)."""
    return build(MANIFESTS / "overlays" / name)


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    """(overlay name, its built objects)."""
    name: str = request.param
    return name, built(name)
